"""``python data_prep/synthesize_instruct.py --input PATH [PATH ...] --output DIR [cfg.yaml] [key=value ...]``.

Instruction pairs from documented Python functions, verified by running their doctests and asserts in
the sandbox; the same flag layout as ``filter_stack.py``. See ``llmfoundry_lite/synth/pipeline.py``.
"""

from __future__ import annotations

from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.config import load_io_config, to_yaml
from llmfoundry_lite.synth.config import SynthConfig

USAGE = "python data_prep/synthesize_instruct.py --input PATH [PATH ...] --output DIR [cfg.yaml] [key=value ...]"


def parse_args(argv: list[str]) -> SynthConfig:
    """``--input``/``--output`` flags, then an optional YAML file and ``key=value`` overrides."""
    return load_io_config(SynthConfig, argv, "Instruction pairs from documented Python functions.", usage=USAGE,
                          output_help="output directory (instruct.jsonl, train/heldout.jsonl, stats.json, report/)")


def headline(stats: dict) -> str:
    """Three lines for the console: documents, pairs with the drop reasons that fired, verification (and
    self-align mode's counts)."""
    reasons = ", ".join(f"{k} {v}" for k, v in stats["dropped_by_reason"].items() if v)
    skipped = ", ".join(f"{k} {v}" for k, v in stats["documents_skipped_by_reason"].items())
    v = stats["verify"]
    untested = ", ".join(f"{k} {n}" for k, n in v["untested_by_reason"].items() if n)
    units = stats["extract"]
    return (f"documents {stats['documents']} (parsed {stats['documents_parsed']}; skipped: {skipped or 'none'}) "
            f"in {units['units']} units, {units['reused']} reused from an earlier run "
            f"(extract {stats['seconds']['extract']:g} s)\n"
            f"functions {stats['seen']}: kept {stats['kept']} (train {stats['train']}, heldout {stats['heldout']}); "
            f"dropped: {reasons or 'none'}\n"
            f"verify: {v['pairs_with_tests']} of {v['pairs']} pairs have tests "
            f"({v['tests_per_pair']['mean_of_pairs_with_tests']:g} per pair), {v['executed']} run, "
            f"{v['passed']} passed; "
            f"kept {v['verified']} verified ({v['share_verified']:.1%}); not run: {untested or 'none'} "
            f"({stats['seconds']['verify']:g} s)" + _self_align_line(stats))


def _self_align_line(stats: dict) -> str:
    """The fourth line in self-align mode (``model=PATH``), else nothing."""
    s = stats.get("self_align")
    if s is None:
        return ""
    without = ", ".join(f"{k} {n}" for k, n in s["without_tests"].items())
    skipped = ", ".join(f"{k} {n}" for k, n in s["samples_skipped_by_reason"].items())
    return (f"\nself-align ({s['targets']}, k={s['k']}): {s['instructions_targeted']} instructions targeted, "
            f"{s['sampled']} sampled (without tests: {without or 'none'}); {s['samples']} samples, "
            f"{s['samples_run']} run (skipped: {skipped or 'none'}), {s['samples_passed']} passed; "
            f"added {s['rows_added']} self-aligned rows ({stats['seconds']['self_align']:g} s)")


def main(argv: list[str]) -> None:
    """Synthesize, verify and split the pairs; print the counts and where they went."""
    with user_errors():
        cfg = parse_args(argv)
    print(to_yaml(cfg), end="")
    from llmfoundry_lite.synth.pipeline import run_synthesis

    with user_errors(ValueError):  # bad inputs are reported as ValueErrors (InputError among them)
        stats = run_synthesis(cfg)
    print(headline(stats))
    print(stats["verify"]["sandbox"])
    report = f", {len(stats['report'])} PNGs in report/" if "report" in stats else ""
    print(f"wrote {cfg.output}/instruct.jsonl, train.jsonl, heldout.jsonl, stats.json{report}")
