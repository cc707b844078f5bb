"""LoRA under FSDP2 with sharded checkpoints: a (DCP) checkpoint holds the adapters alone, so a resume asks
it for nothing else. Apart from ``lora.py`` because it needs Composer, which inference loaders do not."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

from llmfoundry_lite.finetune.lora import drop_frozen_weights
from llmfoundry_lite.training.parallel import MeshFSDP2Config


class AdaptersOnlyLoadPlanner(DefaultLoadPlanner):
    """Loads a sharded (DCP) LoRA checkpoint: asks it for the adapters alone, as ``drop_frozen_weights``
    saved it. Composer's sharded load requests every key of the model's state dict, base weights
    included ("Missing key in checkpoint state_dict: state.model.model.embed.weight"), and its autoresume
    drops ``load_ignore_keys``; the planner sees the request on every load, autoresume included. The keys
    are removed from Composer's own request dict, so its (non-strict) model load then sets adapters only."""

    def set_up_planner(self, state_dict: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        drop_frozen_weights(state_dict)
        super().set_up_planner(state_dict, *args, **kwargs)


@dataclasses.dataclass
class AdapterCheckpointFSDP2Config(MeshFSDP2Config):
    """The run's FSDP2 config whose sharded checkpoints load through ``AdaptersOnlyLoadPlanner``."""

    @property
    def load_planner(self) -> DefaultLoadPlanner:
        return AdaptersOnlyLoadPlanner()

    @classmethod
    def of(cls, config: MeshFSDP2Config) -> AdapterCheckpointFSDP2Config:
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init})
