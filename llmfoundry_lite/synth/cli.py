"""Command line of ``data_prep/synthesize_instruct.py``: the same flag layout as ``filter_stack.py``."""

from __future__ import annotations

import sys

from llmfoundry_lite.config import ConfigError, exit_on_config_error, load_io_config, to_yaml
from llmfoundry_lite.synth.config import SynthConfig

USAGE = "python data_prep/synthesize_instruct.py --input PATH [PATH ...] --output DIR [cfg.yaml] [key=value ...]"


def parse_args(argv: list[str]) -> SynthConfig:
    """``--input``/``--output`` flags, then an optional YAML file and ``key=value`` overrides."""
    return load_io_config(SynthConfig, argv, "Instruction pairs from documented Python functions.", usage=USAGE,
                          output_help="output directory (instruct.jsonl, train.jsonl, heldout.jsonl, stats.json)")


def headline(stats: dict) -> str:
    """Two lines for the console: documents and pairs, with the drop reasons that fired."""
    reasons = ", ".join(f"{k} {v}" for k, v in stats["dropped_by_reason"].items() if v)
    skipped = ", ".join(f"{k} {v}" for k, v in stats["documents_skipped_by_reason"].items())
    return (f"documents {stats['documents']} (parsed {stats['documents_parsed']}; skipped: {skipped or 'none'})\n"
            f"functions {stats['seen']}: kept {stats['kept']} (train {stats['train']}, heldout {stats['heldout']}); "
            f"dropped: {reasons or 'none'}")


def main(argv: list[str]) -> None:
    try:
        cfg = parse_args(argv)
    except ConfigError as err:
        exit_on_config_error(err)
    print(to_yaml(cfg), end="")
    from llmfoundry_lite.corpus.readers import InputError
    from llmfoundry_lite.synth.pipeline import run_synthesis

    try:
        stats = run_synthesis(cfg)
    except (InputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(headline(stats))
    print(f"wrote {cfg.output}/instruct.jsonl, train.jsonl, heldout.jsonl, stats.json")
