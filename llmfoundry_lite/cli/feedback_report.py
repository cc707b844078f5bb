"""``python scripts/feedback_report.py (--input DIR | --db URL) --output report.html [--baseline NAME]``.

Writes the feedback dashboard — the page the server's ``GET /dashboard`` shows — to a file, and prints
acceptance per variant with the A/B tests' p-values. ``--input`` reads a Parquet export
(``completions.parquet`` and ``feedback.parquet``, as ``scripts/feedback_export.py`` writes them);
``--db`` reads the store itself (any SQLAlchemy URL the server was given as ``--feedback-db``).
See ``llmfoundry_lite/serve/feedback_stats.py`` for what is computed and ``serve/dashboard.py`` for the page.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pyarrow as pa

from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.serve.dashboard import render_stats
from llmfoundry_lite.serve.feedback_stats import FeedbackStats, feedback_stats

EXPORT_FILES = ("completions.parquet", "feedback.parquet")
"""The Parquet export's files, in the order ``FeedbackStore.tables()`` returns the tables."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The flags (argparse exits 2 naming a bad one)."""
    p = argparse.ArgumentParser(prog="scripts/feedback_report.py", description=__doc__.split("\n\n")[1])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="DIR", help="a Parquet export: DIR/completions.parquet and DIR/feedback.parquet")
    source.add_argument("--db", metavar="URL", help="the feedback store's SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...)")
    p.add_argument("--output", required=True, metavar="HTML", help="where to write the dashboard page")
    p.add_argument("--baseline", metavar="NAME", default=None,
                   help="the variant the others are tested against (default: the one with the most completions)")
    p.add_argument("--title", default="Feedback dashboard", help="the page's title")
    return p.parse_args(argv)


def load_tables(args: argparse.Namespace) -> tuple[pa.Table, pa.Table]:
    """(completions, feedback) from the Parquet export or the store."""
    if args.input is not None:
        import pyarrow.parquet as pq

        paths = [Path(args.input) / name for name in EXPORT_FILES]
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(f"no {path.name} in {args.input} (expected {' and '.join(EXPORT_FILES)})")
        return pq.read_table(paths[0]), pq.read_table(paths[1])
    # imported here: SQLAlchemy is needed only to read a store, not an export
    from llmfoundry_lite.serve.feedback_store import FeedbackStore

    store = FeedbackStore(args.db)
    try:
        return store.tables()
    finally:
        store.close()


def summary_lines(stats: FeedbackStats) -> list[str]:
    """Acceptance per variant, then each variant's overall test against the baseline, as printed lines."""
    if not stats.variants:
        return ["no feedback yet: no completions"]
    by_variant = {a.variant: a for a in stats.by_variant}
    lines = [f"{'variant':<20} {'completions':>11} {'shown':>7} {'accepted':>8} {'rate':>7}  95% CI"]
    for v in stats.variants:
        mark = " (baseline)" if v == stats.baseline else ""
        a = by_variant.get(v)
        numbers = (f"{a.shown:>7} {a.accepted:>8} {100 * a.rate:>6.1f}%  {100 * a.low:.1f}–{100 * a.high:.1f}%"
                   if a else f"{0:>7} {0:>8} {'—':>7}")
        lines.append(f"{v + mark:<20} {stats.completions[v]:>11} {numbers}")
    for c in stats.comparisons:
        if c.language is not None:
            continue
        if c.p_value is None or c.z is None or c.diff is None:
            lines.append(f"{c.variant} vs {c.baseline}: no test (nothing shown on one side)")
        else:
            lines.append(f"{c.variant} vs {c.baseline}: {100 * c.diff:+.1f} pts, z = {c.z:.2f}, p = {c.p_value:.3g}")
    if stats.unmatched_feedback or stats.unknown_events:
        lines.append(f"not counted: {stats.unmatched_feedback} feedback rows for unknown completions, "
                     f"{stats.unknown_events} with an unknown event")
    return lines


def main(argv: list[str]) -> None:
    """Read the tables, write the page, print the summary."""
    args = parse_args(argv)
    with user_errors(ValueError):  # a missing export file, a baseline that served nothing, a table without a column
        completions, feedback = load_tables(args)
        stats = feedback_stats(completions, feedback, baseline=args.baseline)
    page = render_stats(stats, title=args.title, generated_at=time.time())
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    for line in summary_lines(stats):
        print(line)
    print(f"wrote {out} ({len(page.encode()) // 1024} KiB)")
