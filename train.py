"""Train a code LLM: ``composer train.py yamls/<name>.yaml [key=value ...]``."""

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
    raise SystemExit("the training loop is not implemented yet (issue 5); the config above is valid")


if __name__ == "__main__":
    main(sys.argv[1:])
