"""The live model's full weights as a single-file Composer-style checkpoint (``state.model`` + ``RunInfo``),
loadable by ``models/load.load_for_inference`` and ``scripts/replay_spike.py``.

Under FSDP2 the full state dict is gathered with torch's ``get_model_state_dict`` (a collective: every
rank calls this) and offloaded to host memory as it is gathered; rank 0 writes the file. Used for rare
events (a rollback), never per step.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from composer.core import State
from composer.utils import dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from llmfoundry_lite.callbacks.run_info import RunInfo


def save_full_weights(state: State, path: Path) -> Path:
    """Write ``state.model``'s full weights to ``path`` (rank 0; every rank must call); returns ``path``."""
    weights = get_model_state_dict(state.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_global_rank() == 0:
        info = next((c for c in state.callbacks if isinstance(c, RunInfo)), None)
        if info is None:
            raise ValueError("save_full_weights needs the RunInfo callback (model config + tokenizer) in the trainer")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"state": {"model": weights, "callbacks": {"RunInfo": info.state_dict()}}}, tmp)
        os.replace(tmp, path)  # a reader never sees half a file
    return path
