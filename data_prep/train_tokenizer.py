"""Train the code vocabulary: ``python data_prep/train_tokenizer.py [cfg.yaml] [--input PATH ...] [--output DIR] [key=value ...]``."""

import json
import sys

from llmfoundry_lite.config import ConfigError, exit_on_config_error, load_config, split_cli, to_yaml
from llmfoundry_lite.tokenizer.config import TokenizerConfig


def parse_flags(argv: list[str]) -> tuple[list[str], dict]:
    """Pull ``--input A [B ...]`` and ``--output DIR`` out of ``argv``; the rest is YAML + overrides."""
    rest: list[str] = []
    flags: dict = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--input", "--output"):
            values = []
            while i + 1 < len(argv) and not argv[i + 1].startswith("--") and "=" not in argv[i + 1]:
                values.append(argv[i + 1])
                i += 1
            if not values:
                raise ConfigError(f"{arg} needs a value")
            if arg == "--output" and len(values) != 1:
                raise ConfigError(f"--output takes one directory, got {values}")
            flags[arg[2:]] = values if arg == "--input" else values[0]
        else:
            rest.append(arg)
        i += 1
    return rest, flags


def main(argv: list[str]) -> None:
    try:
        rest, flags = parse_flags(argv)
        yaml_path, overrides = split_cli(rest)
        cfg = load_config(TokenizerConfig, yaml_path, overrides, flags=flags)
    except ConfigError as err:
        exit_on_config_error(err)
    print(to_yaml(cfg), end="")
    from llmfoundry_lite.tokenizer.train import train_tokenizer

    manifest = train_tokenizer(cfg)
    state = "reused existing tokenizer" if manifest["reused"] else "trained tokenizer"
    print(f"{state} at {cfg.output}: vocab {manifest['vocab_size']}, sample {manifest['sample']['docs']} docs "
          f"/ {manifest['sample']['bytes']:,} bytes, {manifest['training_seconds']} s")
    print(json.dumps({k: manifest[k] for k in ("eos_id", "pad_id", "num_special", "tokenizer_sha256")}))


if __name__ == "__main__":
    main(sys.argv[1:])
