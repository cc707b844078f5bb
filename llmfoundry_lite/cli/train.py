"""``composer train.py yamls/<name>.yaml [key=value ...]``: pretrain, or fine-tune when the config names a ``base``.

The config is parsed and validated before torch or composer is imported, so a typo fails in well
under a second; setup problems a user can fix (paths, a shards manifest that does not match, the
batch split) end in one line too. The run itself is never wrapped: an error there is a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path

from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.config import load_config, split_cli, to_yaml
from llmfoundry_lite.training.config import TrainConfig


def main(argv: list[str]) -> None:
    """Pretrain (or fine-tune, see ``is_finetune``) from a YAML file and ``key=value`` overrides."""
    with user_errors():
        yaml_path, overrides = split_cli(argv)
        finetuning = is_finetune(yaml_path, overrides)
    if finetuning:
        return finetune_main(yaml_path, overrides)
    with user_errors():
        cfg = load_config(TrainConfig, yaml_path, overrides)
    print(to_yaml(cfg), end="")
    summary = cfg.summary()
    print(f"model: {summary['params']:,} parameters; {summary['tokens_per_step']:,} tokens per optimizer step")
    from llmfoundry_lite.callbacks.rollback import TrainingUnstable
    from llmfoundry_lite.training.trainer import build_trainer, fit  # heavy imports only after validation

    with user_errors(ValueError):
        trainer = build_trainer(cfg)
    try:
        fit(trainer, cfg)
    except TrainingUnstable as e:  # every rank stops here together; the report is in the save folder
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(3) from None


def is_finetune(yaml_path: str | None, overrides: list[str]) -> bool:
    """A top-level ``base`` (in the YAML or as ``base=...``) makes this a fine-tuning run.

    A YAML file that does not exist is left to ``load_config``, which names it in a config error."""
    from omegaconf import OmegaConf

    raw = OmegaConf.load(yaml_path) if yaml_path and Path(yaml_path).is_file() else {}
    return "base" in raw or any(o.split("=", 1)[0] == "base" for o in overrides)


def finetune_main(yaml_path: str | None, overrides: list[str]) -> None:
    """Fine-tune: the same shape as pretraining, with ``FinetuneConfig`` and its trainer."""
    from llmfoundry_lite.finetune.config import FinetuneConfig

    with user_errors():
        cfg = load_config(FinetuneConfig, yaml_path, overrides)
    print(to_yaml(cfg), end="")
    from llmfoundry_lite.finetune.trainer import build_finetune_trainer, finetune

    with user_errors(ValueError):
        trainer = build_finetune_trainer(cfg)
    finetune(trainer, cfg)
