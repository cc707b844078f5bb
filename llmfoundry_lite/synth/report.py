"""X-ray of a synthesis run: PNG plots in ``<output>/report/`` drawn from ``stats.json`` and the kept rows.

Plots (matplotlib, Agg backend through the filter stage's ``_plt``): prompt and response length
histograms with the ``max_*_chars`` limits drawn; documents per language read and pairs per
language kept; functions dropped by reason (log scale, kept drawn alongside); tests per pair
and the origins of kept pairs with the verification outcomes (and the self-aligned rows added, with ``model``).
"""

from __future__ import annotations

from collections import Counter
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


def _lengths_png(rows: list[dict], cfg: SynthConfig, path: Path) -> None:
    fig, axes = _plt().subplots(1, 2, figsize=(12, 4))
    for ax, key, limit in zip(axes, ("prompt", "response"), (cfg.max_prompt_chars, cfg.max_response_chars),
                              strict=True):
        lengths = np.array([len(r[key]) for r in rows], dtype=float)
        ax.hist(lengths, bins=np.linspace(0, limit, 41))
        ax.axvline(limit, color="red", linestyle="--", label=f"max_{key}_chars {limit}")
        median = f"median {np.median(lengths):.0f}" if lengths.size else "no pairs"
        ax.set_title(f"{key} length (chars) — {len(rows):,} kept pairs, {median}")
        ax.legend()
    _save(fig, path)


def _languages_png(stats: dict, rows: list[dict], path: Path) -> None:
    docs = list(stats["documents_by_language"].items())[:TOP_LANGS][::-1]
    pairs = sorted(Counter(r["language"] for r in rows).items())
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


def write_report(out: Path, stats: dict, rows: list[dict], cfg: SynthConfig) -> list[str]:
    """Draw every plot into ``out/report`` from ``stats`` and the kept ``rows``; returns PNG paths under ``out``."""
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    _lengths_png(rows, cfg, report / "lengths.png")
    _languages_png(stats, rows, report / "languages.png")
    _dropped_png(stats, report / "dropped.png")
    _tests_png(stats, report / "tests.png")
    return sorted(str(p.relative_to(out)) for p in report.glob("*.png"))
