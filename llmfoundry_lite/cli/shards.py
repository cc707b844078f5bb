"""``python data_prep/shard_stack.py [yamls/data/<name>.yaml] [key=value ...]``: corpus → filter → vocabulary → MDS shards.

Without a YAML file the CPU demo config ``yamls/data/local.yaml`` is used, so a bare
``python data_prep/shard_stack.py`` makes the data ``yamls/code-tiny.yaml`` trains on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.config import load_config, split_cli, to_yaml
from llmfoundry_lite.shards.stack import StackConfig

DEFAULT_YAML = Path(__file__).resolve().parents[2] / "yamls" / "data" / "local.yaml"


def parse_args(argv: list[str]) -> StackConfig:
    """An optional YAML file (default ``DEFAULT_YAML``, said on stdout) and ``key=value`` overrides."""
    yaml_path, overrides = split_cli(argv)
    if yaml_path is None:
        yaml_path = str(DEFAULT_YAML)
        print(f"# no config file given: using {DEFAULT_YAML.relative_to(DEFAULT_YAML.parents[2])}")
    return load_config(StackConfig, yaml_path, overrides)


def run(argv: list[str]) -> dict[str, Any]:
    """The command without its error handling: run every stage, print how to train on the result,
    return the run's summary (what each stage did or reused)."""
    cfg = parse_args(argv)
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


def main(argv: list[str]) -> None:
    """Run the stages; a missing input (of any source) or a bad key ends in one line."""
    with user_errors():
        run(argv)
