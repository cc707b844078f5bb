"""Train a code LLM: ``composer train.py yamls/<name>.yaml [key=value ...]`` (or ``python train.py``)."""

import sys

from llmfoundry_lite.config import ConfigError, exit_on_config_error, load_config, split_cli, to_yaml
from llmfoundry_lite.training.config import TrainConfig


def main(argv: list[str]) -> None:
    try:
        yaml_path, overrides = split_cli(argv)
        if is_finetune(yaml_path, overrides):
            return finetune_main(yaml_path, overrides)
        cfg = load_config(TrainConfig, yaml_path, overrides)
    except ConfigError as err:
        exit_on_config_error(err)
    print(to_yaml(cfg), end="")
    summary = cfg.summary()
    print(f"model: {summary['params']:,} parameters; {summary['tokens_per_step']:,} tokens per optimizer step")
    from llmfoundry_lite.training.trainer import build_trainer, fit  # heavy imports only after validation

    try:  # setup problems a user can fix (paths, shards manifest, batch split) end with one line
        trainer = build_trainer(cfg)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    fit(trainer, cfg)


def is_finetune(yaml_path: str | None, overrides: list[str]) -> bool:
    """A top-level ``base`` (in the YAML or as ``base=...``) makes this a fine-tuning run."""
    from omegaconf import OmegaConf

    raw = OmegaConf.load(yaml_path) if yaml_path else {}
    return "base" in raw or any(o.split("=", 1)[0] == "base" for o in overrides)


def finetune_main(yaml_path: str | None, overrides: list[str]) -> None:
    from llmfoundry_lite.finetune.config import FinetuneConfig

    try:
        cfg = load_config(FinetuneConfig, yaml_path, overrides)
    except ConfigError as err:
        exit_on_config_error(err)
    print(to_yaml(cfg), end="")
    from llmfoundry_lite.finetune.trainer import build_finetune_trainer, finetune

    try:
        trainer = build_finetune_trainer(cfg)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    finetune(trainer, cfg)


if __name__ == "__main__":
    main(sys.argv[1:])
