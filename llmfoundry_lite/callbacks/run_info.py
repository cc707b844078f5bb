"""Make every checkpoint self-describing: model shape and tokenizer travel inside it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from composer.core import Callback, State
from composer.loggers import Logger

from llmfoundry_lite.models.config import ModelConfig


class RunInfo(Callback):
    """Stores the model config and the tokenizer JSON in Composer checkpoints.

    Composer saves each callback's ``state_dict`` under ``state.callbacks.RunInfo``;
    ``llmfoundry_lite.models.load.load_for_inference`` reads it back, so a ``.pt`` file
    alone is enough to rebuild the model and its tokenizer.
    """

    def __init__(self, model_cfg: ModelConfig, tokenizer_dir: str | Path | None) -> None:
        self.model_cfg = model_cfg
        self.tokenizer_json = None
        if tokenizer_dir is not None:
            self.tokenizer_json = (Path(tokenizer_dir) / "tokenizer.json").read_text()

    def state_dict(self) -> dict[str, Any]:
        return {"model_config": dataclasses.asdict(self.model_cfg), "tokenizer_json": self.tokenizer_json}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = ModelConfig(**state["model_config"])
        if saved != self.model_cfg:
            raise ValueError(f"checkpoint was trained with model config {saved}, but this run has {self.model_cfg}")

    def run_event(self, event: Any, state: State, logger: Logger) -> None:
        return None
