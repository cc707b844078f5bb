"""Build the local Stack-format corpus: ``python data_prep/make_local_stack.py [cfg.yaml] [key=value ...]``."""

import sys

from llmfoundry_lite.config import ConfigError, exit_on_config_error, load_config, split_cli, to_yaml
from llmfoundry_lite.corpus.local_stack import LocalStackConfig, build_local_stack, format_summary


def main(argv: list[str]) -> None:
    try:
        yaml_path, overrides = split_cli(argv)
        cfg = load_config(LocalStackConfig, yaml_path, overrides)
    except ConfigError as err:
        exit_on_config_error(err)
    print(to_yaml(cfg), end="")
    manifest = build_local_stack(cfg)
    state = "reused existing corpus" if manifest["reused"] else "built corpus"
    print(f"{state} at {cfg.output} ({len(manifest['shards'])} shard(s))")
    print(format_summary(manifest))


if __name__ == "__main__":
    main(sys.argv[1:])
