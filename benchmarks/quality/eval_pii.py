"""Precision and recall of the PII scrubber on the labeled evaluation set.

    python benchmarks/quality/eval_pii.py [pii-config.yaml] [key=value ...] [--dir DIR] [--verbose]

Keys are those of the ``pii:`` section (``PIIConfig``), e.g. ``key_min_length=24``. The set has a
``dev`` part (written while the detectors were designed) and a ``heldout`` part (written after, scored
once before any further change); both are reported, then the total. ``--verbose`` lists every false
positive and miss.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a file: see benchmarks/__init__.py

from benchmarks.quality.pii_evaluate import EVALSET_DIR, evalset_files, evaluate, format_table
from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.config import load_config, split_cli
from llmfoundry_lite.filtering.pii.config import PIIConfig

BIGCODE = {"email": (0.877, 0.959), "ip_address": (0.804, 0.828), "key": (0.783, 0.529)}
"""BigCode's published (precision, recall) on their 400 annotated files, for comparison."""


def print_baseline(files: list[Path]) -> None:
    """Keys only: plain detect-secrets, a temporary file per document, default entropy limits."""
    from benchmarks.quality.pii_baseline import baseline_settings, scan_with_tempfile

    with baseline_settings():
        scores = evaluate(files, PIIConfig(), detector=scan_with_tempfile, kinds=("key",))
    print("\n[peer] plain detect-secrets 1.5, temp file per document (BigCode's scan step without its post-filters)")
    print(format_table(scores))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(EVALSET_DIR), help="folder of labeled *.pii files (searched recursively)")
    parser.add_argument("--verbose", action="store_true", help="list false positives and misses")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the plain detect-secrets peer (temp file per document)"
    )
    args, rest = parser.parse_known_args(argv)
    with user_errors():
        yaml_path, overrides = split_cli(rest)
        cfg = load_config(PIIConfig, yaml_path, overrides)
    root = Path(args.dir)
    files = evalset_files(root)
    subsets = sorted({f.parent for f in files})
    for subset in subsets if len(subsets) > 1 else []:
        part = [f for f in files if f.parent == subset]
        print(f"\n[{subset.name}] {len(part)} files")
        print(format_table(evaluate(part, cfg)))
    scores = evaluate(files, cfg)
    print(f"\n[all] {len(files)} labeled files in {root}")
    print(format_table(scores))
    if not args.no_baseline:
        print_baseline(files)
    print("BigCode pii (published): " + ", ".join(f"{k} P {p:.3f} / R {r:.3f}" for k, (p, r) in BIGCODE.items()))
    if args.verbose:
        for kind, s in scores.items():
            for item in s.false_positives:
                print(f"FP {kind}: {item}")
            for item in s.misses:
                print(f"FN {kind}: {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
