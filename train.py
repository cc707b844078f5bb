"""Train a code LLM: ``composer train.py yamls/<name>.yaml [key=value ...]`` (or ``python train.py``)."""

import sys

from llmfoundry_lite.config import ConfigError, exit_on_config_error, load_config, split_cli, to_yaml
from llmfoundry_lite.training.config import TrainConfig


def main(argv: list[str]) -> None:
    try:
        yaml_path, overrides = split_cli(argv)
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


if __name__ == "__main__":
    main(sys.argv[1:])
