"""``python data_prep/train_tokenizer.py [cfg.yaml] [--input PATH ...] [--output DIR] [key=value ...]``.

Trains the code vocabulary (byte-level BPE with the special tokens FIM and chat need) on a sample of
the filtered corpus; see ``llmfoundry_lite/tokenizer/train.py``.
"""

from __future__ import annotations

import json

from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.config import ConfigError, load_config, split_cli, to_yaml
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


def parse_args(argv: list[str]) -> TokenizerConfig:
    """argv → validated config (``--input``/``--output`` override the YAML and ``key=value`` overrides)."""
    rest, flags = parse_flags(argv)
    yaml_path, overrides = split_cli(rest)
    return load_config(TokenizerConfig, yaml_path, overrides, flags=flags)


def main(argv: list[str]) -> None:
    """Train (or reuse) the vocabulary and print its size, sample and the ids other stages need."""
    with user_errors():
        cfg = parse_args(argv)
    print(to_yaml(cfg), end="")
    from llmfoundry_lite.tokenizer.train import train_tokenizer

    with user_errors():  # a missing --input is the data layer's InputError, naming the path
        manifest = train_tokenizer(cfg)
    state = "reused existing tokenizer" if manifest["reused"] else "trained tokenizer"
    print(f"{state} at {cfg.output}: vocab {manifest['vocab_size']}, sample {manifest['sample']['docs']} docs "
          f"/ {manifest['sample']['bytes']:,} bytes, {manifest['training_seconds']} s")
    print(json.dumps({k: manifest[k] for k in ("eos_id", "pad_id", "num_special", "tokenizer_sha256")}))
