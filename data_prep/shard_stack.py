"""Corpus → filter → vocabulary → MDS shards: ``python data_prep/shard_stack.py [yamls/data/<name>.yaml] [key=value ...]``.

Without a YAML file the CPU demo config ``yamls/data/local.yaml`` is used, so a bare
``python data_prep/shard_stack.py`` makes the data ``yamls/code-tiny.yaml`` trains on.
"""

import sys
from pathlib import Path

from llmfoundry_lite.config import ConfigError, exit_on_config_error, load_config, split_cli, to_yaml
from llmfoundry_lite.shards.stack import StackConfig

DEFAULT_YAML = Path(__file__).resolve().parents[1] / "yamls" / "data" / "local.yaml"


def main(argv: list[str]) -> dict:
    try:
        yaml_path, overrides = split_cli(argv)
        if yaml_path is None:
            yaml_path = str(DEFAULT_YAML)
            print(f"# no config file given: using {DEFAULT_YAML.relative_to(DEFAULT_YAML.parents[2])}")
        cfg = load_config(StackConfig, yaml_path, overrides)
    except ConfigError as err:
        exit_on_config_error(err)
    print(to_yaml(cfg), end="")
    from llmfoundry_lite.shards.stack import run_stack

    summary = run_stack(cfg)
    shards = summary["shards"]
    if "streams" not in shards:
        print(f"done: tokenizer {summary['tokenizer_dir']} (vocab {shards['vocab_size']}), "
              f"shards {cfg.shards.output} (max_seq_len {shards['max_seq_len']})")
        return summary
    print(f"done: tokenizer {summary['tokenizer_dir']}; one shard set per stream. Train on them with "
          f"(add proportion + epoch_size, or repeat, to weight them):")
    print("train_loader:\n  streams:")
    for name, manifest in shards["streams"].items():
        samples = manifest["splits"]["train"]["samples"]
        print(f"    {name}: {{local: {manifest['output']}}}  # {samples:,} train samples")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
