"""X-ray of a synthesis run: PNG plots in ``<output>/report/`` drawn from ``stats.json`` and a ``RowSummary``.

The kept rows enter only as a ``RowSummary`` (length histograms, medians, pairs per language), which
the local engine computes from its rows and the Spark engine with aggregations, so a plot never
needs the rows themselves.

Plots (matplotlib, Agg backend through the filter stage's ``_plt``): prompt and response length
histograms with the ``max_*_chars`` limits drawn; documents per language read and pairs per
language kept; functions dropped by reason (log scale, kept drawn alongside); tests per pair
and the origins of kept pairs with the verification outcomes (and the self-aligned rows added, with ``model``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmfoundry_lite.filtering.report import TOP_LANGS, _plt
from llmfoundry_lite.synth.config import SynthConfig


def _save(fig: Any, path: Path) -> None:
    plt = _plt()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


LENGTH_BINS = 40
"""Equal-width bins from 0 to ``max_<key>_chars`` (kept pairs never exceed it)."""


@dataclass
class RowSummary:
    """What the plots need of the kept rows."""

    rows: int
    histograms: dict[str, list[int]]
    """``prompt`` / ``response``: pairs per length bin (``length_bin``)."""
    medians: dict[str, float | None]
    """Median length in characters per key (None without rows)."""
    languages: dict[str, int]
    """Kept pairs per language."""


def length_bin(length: int, limit: int) -> int:
    """The bin of a length on ``LENGTH_BINS`` equal bins over [0, limit] (the last bin is closed)."""
    return min(length * LENGTH_BINS // limit, LENGTH_BINS - 1)


def _median(counts: Counter) -> float | None:
    """``np.median`` of the values counted in ``counts`` (the mean of the two middle ones for an even count)."""
    n = sum(counts.values())
    if not n:
        return None
    wanted, seen, middle = sorted({(n - 1) // 2, n // 2}), 0, []
    for value in sorted(counts):
        seen += counts[value]
        while wanted and wanted[0] < seen:
            middle.append(value)
            wanted.pop(0)
    return (middle[0] + middle[-1]) / 2


class RowTally:
    """Mergeable counts of kept rows: lengths per exact value (at most ``max_*_chars`` + 1 entries each,
    whatever the corpus size) and languages. Spark builds one per partition and merges them."""

    def __init__(self) -> None:
        self.rows = 0
        self.lengths: dict[str, Counter] = {"prompt": Counter(), "response": Counter()}
        self.languages: Counter = Counter()

    def add(self, row: dict) -> None:
        self.rows += 1
        for key, counts in self.lengths.items():
            counts[len(row[key])] += 1
        self.languages[row["language"]] += 1

    def merge(self, other: RowTally) -> RowTally:
        self.rows += other.rows
        for key, counts in self.lengths.items():
            counts.update(other.lengths[key])
        self.languages.update(other.languages)
        return self

    def summary(self, cfg: SynthConfig) -> RowSummary:
        histograms, medians = {}, {}
        for key, limit in (("prompt", cfg.max_prompt_chars), ("response", cfg.max_response_chars)):
            bins: Counter = Counter()
            for length, n in self.lengths[key].items():
                bins[length_bin(length, limit)] += n
            histograms[key] = [bins[b] for b in range(LENGTH_BINS)]
            medians[key] = _median(self.lengths[key])
        return RowSummary(self.rows, histograms, medians, dict(sorted(self.languages.items())))


def summarize_rows(rows: Sequence[dict], cfg: SynthConfig) -> RowSummary:
    """``RowSummary`` of rows in memory (the local engine)."""
    tally = RowTally()
    for row in rows:
        tally.add(row)
    return tally.summary(cfg)


def _lengths_png(summary: RowSummary, cfg: SynthConfig, path: Path) -> None:
    fig, axes = _plt().subplots(1, 2, figsize=(12, 4))
    for ax, key, limit in zip(axes, ("prompt", "response"), (cfg.max_prompt_chars, cfg.max_response_chars),
                              strict=True):
        edges = np.linspace(0, limit, LENGTH_BINS + 1)
        ax.stairs(summary.histograms[key], edges, fill=True)
        ax.axvline(limit, color="red", linestyle="--", label=f"max_{key}_chars {limit}")
        median = summary.medians[key]
        ax.set_title(f"{key} length (chars) — {summary.rows:,} kept pairs, "
                     + (f"median {median:.0f}" if median is not None else "no pairs"))
        ax.legend()
    _save(fig, path)


def _languages_png(stats: dict, summary: RowSummary, path: Path) -> None:
    docs = list(stats["documents_by_language"].items())[:TOP_LANGS][::-1]
    pairs = list(summary.languages.items())
    fig, axes = _plt().subplots(1, 2, figsize=(12, 0.35 * max(len(docs), 3) + 2))
    axes[0].barh([name for name, _ in docs], [n for _, n in docs])
    axes[0].set_xscale("symlog")
    axes[0].set_title(f"documents read per language (top {TOP_LANGS}; symlog)")
    axes[1].barh([name for name, _ in pairs], [n for _, n in pairs])
    axes[1].set_title("kept pairs per language")
    _save(fig, path)


def _dropped_png(stats: dict, path: Path) -> None:
    reasons = [(r, n) for r, n in stats["dropped_by_reason"].items() if n][::-1] + [("(kept)", stats["kept"])]
    fig, ax = _plt().subplots(figsize=(9, 0.35 * len(reasons) + 1.5))
    bars = ax.barh([r for r, _ in reasons], [n for _, n in reasons])
    bars[-1].set_color("tab:green")
    ax.bar_label(bars, fontsize=8)
    ax.set_xscale("log")
    ax.set_title(f"functions dropped by reason — {stats['seen']:,} seen, {stats['kept']:,} kept (log scale)")
    _save(fig, path)


def _tests_png(stats: dict, path: Path) -> None:
    verify = stats["verify"]
    hist = {int(k): v for k, v in verify["tests_per_pair"]["histogram"].items()}
    fig, axes = _plt().subplots(1, 2, figsize=(12, 4))
    bars = axes[0].bar([str(k) for k in sorted(hist)], [hist[k] for k in sorted(hist)])
    axes[0].bar_label(bars, fontsize=8)
    axes[0].set_yscale("symlog")
    axes[0].set_xlabel("tests mined (doctest blocks + literal asserts)")
    axes[0].set_title(f"tests per pair — {verify['pairs_with_tests']:,} of {verify['pairs']:,} pairs have any")
    dropped = stats["dropped_by_reason"]
    origins = stats["origins"]
    outcome = {"kept verified": origins.get("verified", 0), "kept untested": origins.get("untested", 0),
               "failed_tests": dropped["failed_tests"], "tests_timed_out": dropped["tests_timed_out"],
               "dropped untested": dropped["untested"]}
    if "self_align" in stats:  # self-align mode: rows added beside the pairs (not part of kept + dropped)
        outcome["added self-aligned"] = origins.get("self-aligned", 0)
    bars = axes[1].barh(list(outcome)[::-1], list(outcome.values())[::-1])
    axes[1].bar_label(bars, fontsize=8)
    axes[1].set_xscale("symlog")
    axes[1].set_title(f"verification: {verify['executed']:,} programs run, "
                      f"share verified {verify['share_verified']:.1%}")
    _save(fig, path)


def write_report(out: Path, stats: dict, summary: RowSummary, cfg: SynthConfig) -> list[str]:
    """Draw every plot into ``out/report`` from ``stats`` and the kept rows' ``summary``; returns PNG paths
    under ``out``."""
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    _lengths_png(summary, cfg, report / "lengths.png")
    _languages_png(stats, summary, report / "languages.png")
    _dropped_png(stats, report / "dropped.png")
    _tests_png(stats, report / "tests.png")
    return sorted(str(p.relative_to(out)) for p in report.glob("*.png"))
