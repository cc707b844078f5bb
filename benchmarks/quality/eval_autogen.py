"""Precision and recall of the auto-generated rules on real files labelled by hand.

    python benchmarks/quality/eval_autogen.py [autogen-config.yaml] [key=value ...] [--labels TSV]

Keys are those of the ``autogen:`` section (``AutogenConfig``), e.g. ``header_lines=20``. The
labelled set (default ``autogen_labels.tsv`` beside this script) names files on this machine image; how
it is resolved and what the columns mean is in ``benchmarks/quality/autogen_eval.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a file: see benchmarks/__init__.py

from benchmarks.quality.autogen_eval import evaluate, format_table, load_labelled, parse_labels
from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.config import load_config, split_cli
from llmfoundry_lite.filtering.config import AutogenConfig

LABELS = Path(__file__).resolve().parent / "autogen_labels.tsv"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default=str(LABELS), help="labelled set (label<TAB>pattern[<TAB>limit[<TAB>note]])")
    args, rest = parser.parse_known_args(argv)
    with user_errors():
        yaml_path, overrides = split_cli(rest)
        cfg = load_config(AutogenConfig, yaml_path, overrides)
    labels = Path(args.labels)
    entries = parse_labels(labels.read_text(encoding="utf-8"))
    docs, skips, missing = load_labelled(entries)
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(skips.items())) or "none"
    shown = labels.resolve().relative_to(Path.cwd()) if labels.resolve().is_relative_to(Path.cwd()) else labels
    print(f"{shown}: {len(entries)} entries -> {len(docs)} files; skipped: {skipped}")
    for entry in missing:
        print(f"  missing (line {entry.line_no}): {entry.pattern}")
    print(format_table(evaluate(docs, cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
