"""X-ray of a filter run: PNG plots in ``<output>/report/`` and the headline table for the terminal.

Plots (matplotlib, Agg backend): files and bytes per language before/after; rejections by
reason and by reason x language; histograms of file size, mean and max line length and
alphanumeric fraction of every document seen, with the thresholds drawn and log scales where
the tails are long; PII findings by type; duplicate-cluster sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import FilterConfig

TOP_LANGS = 15
STAT_COLUMNS = ("size", "max_line_length", "mean_line_length", "alphanum_fraction")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _read_stats_columns(out: Path) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    cols: dict[str, list[np.ndarray]] = {c: [] for c in STAT_COLUMNS}
    for part in sorted((out / "kept").glob("*.parquet")) + sorted((out / "rejected").glob("*.parquet")):
        table = pq.read_table(part, columns=list(STAT_COLUMNS))
        for c in STAT_COLUMNS:
            cols[c].append(table[c].to_numpy().astype(float))
    return {c: np.concatenate(v) if v else np.zeros(0) for c, v in cols.items()}


def _languages_png(stats: dict, path: Path) -> None:
    plt = _plt()
    langs = list(stats["languages"].items())[:TOP_LANGS][::-1]
    names = [name for name, _ in langs]
    y = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.4 * len(names) + 2))
    for ax, unit in zip(axes, ("files", "bytes"), strict=True):
        ax.barh(y + 0.2, [row[f"{unit}_before"] for _, row in langs], 0.4, label="before")
        ax.barh(y - 0.2, [row[f"{unit}_after"] for _, row in langs], 0.4, label="after (kept)")
        ax.set_yticks(y, names)
        ax.set_xscale("symlog")
        ax.set_title(f"{unit} per language (symlog scale)")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _rejections_png(stats: dict, path: Path) -> None:
    plt = _plt()
    reasons = list(stats["rejected_by_reason"])
    by_lang = stats["rejected_by_reason_and_lang"]
    langs = [name for name in stats["languages"]][:TOP_LANGS]
    fig, axes = plt.subplots(1, 2, figsize=(14, 0.4 * max(len(reasons), 4) + 2))
    axes[0].barh(reasons[::-1], [stats["rejected_by_reason"][r] for r in reasons[::-1]])
    axes[0].set_xscale("log")
    axes[0].set_title(f"rejected by reason (total {stats['rejected']:,} of {stats['seen']:,}; log scale)")
    grid = np.array([[by_lang.get(r, {}).get(lang, 0) for lang in langs] for r in reasons], dtype=float)
    axes[1].imshow(np.log1p(grid) if grid.size else np.zeros((1, 1)), aspect="auto", cmap="viridis")
    axes[1].set_xticks(range(len(langs)), langs, rotation=60, ha="right")
    axes[1].set_yticks(range(len(reasons)), reasons)
    for (i, j), n in np.ndenumerate(grid):
        if n:
            axes[1].text(j, i, f"{int(n)}", ha="center", va="center", fontsize=7, color="white")
    axes[1].set_title("rejections by reason x language (colour: log)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _distributions_png(cols: dict[str, np.ndarray], cfg: FilterConfig, path: Path) -> None:
    plt = _plt()
    h = cfg.heuristics
    specs = [("size", "file size (bytes)", cfg.max_doc_bytes, True),
             ("max_line_length", "max line length (chars)", h.max_line_length, True),
             ("mean_line_length", "mean line length (chars)", h.mean_line_length, True),
             ("alphanum_fraction", "alphanumeric fraction", h.min_alphanum_fraction, False)]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (col, label, threshold, log) in zip(axes.flat, specs, strict=True):
        values = cols[col]
        if log:
            positive = values[values > 0]
            top = max(positive.max() if positive.size else 10.0, threshold) * 1.5
            bins = np.logspace(0, np.log10(top), 60)
            ax.hist(positive, bins=bins)
            ax.set_xscale("log")
        else:
            ax.hist(values, bins=np.linspace(0, 1, 51))
        ax.set_yscale("log")
        ax.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:g}")
        ax.set_title(f"{label} — {len(values):,} docs")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pii_and_dups_png(stats: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    pii = stats["pii"]
    axes[0].bar(list(pii), list(pii.values()))
    axes[0].set_title("PII findings redacted in kept documents")
    for kind in ("exact", "near"):
        sizes = {int(k): v for k, v in stats["dedup"][f"{kind}_cluster_sizes"].items()}
        if sizes:
            axes[1].plot(sorted(sizes), [sizes[k] for k in sorted(sizes)], marker="o", label=f"{kind} duplicates")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("cluster size (documents)")
    axes[1].set_ylabel("clusters")
    axes[1].set_title("duplicate cluster sizes")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(out: Path, stats: dict, cfg: FilterConfig) -> list[str]:
    """Draw every plot into ``out/report``; returns the PNG paths relative to ``out``."""
    report = out / "report"
    report.mkdir(exist_ok=True)
    _languages_png(stats, report / "languages.png")
    _rejections_png(stats, report / "rejections.png")
    _distributions_png(_read_stats_columns(out), cfg, report / "distributions.png")
    _pii_and_dups_png(stats, report / "pii_and_duplicates.png")
    return sorted(str(p.relative_to(out)) for p in report.glob("*.png"))


def format_headline(stats: dict) -> str:
    """The terminal summary: kept/rejected/skipped, reasons, languages, PII and dedup counts."""
    seen = max(stats["seen"], 1)
    lines = [f"{'documents':<28}{'count':>10}{'share':>8}"]
    for key in ("seen", "kept", "rejected", "skipped"):
        lines.append(f"{key:<28}{stats[key]:>10,}{stats[key] / seen:>8.1%}")
    lines.append("")
    lines.append(f"{'rejected by reason':<28}{'count':>10}{'share':>8}")
    for reason, n in stats["rejected_by_reason"].items():
        lines.append(f"  {reason:<26}{n:>10,}{n / seen:>8.1%}")
    for reason, n in stats["skipped_by_reason"].items():
        lines.append(f"  skipped:{reason:<18}{n:>10,}{n / seen:>8.1%}")
    lines.append("")
    lines.append(f"{'language':<16}{'files in':>10}{'kept':>10}{'MB in':>10}{'MB kept':>10}")
    for lang, row in list(stats["languages"].items())[:TOP_LANGS]:
        lines.append(f"{lang:<16}{row['files_before']:>10,}{row['files_after']:>10,}"
                     f"{row['bytes_before'] / 1e6:>10.2f}{row['bytes_after'] / 1e6:>10.2f}")
    lines.append("")
    pii = ", ".join(f"{k}={v:,}" for k, v in stats["pii"].items())
    d = stats["dedup"]
    lines.append(f"PII redacted: {pii}")
    lines.append(f"dedup: {d['exact_clusters']:,} exact clusters, {d['near_clusters']:,} near clusters")
    benchmarks = stats.get("decontaminated_by_benchmark", {})
    lines.append("decontaminated: " + (", ".join(f"{k}={v:,}" for k, v in benchmarks.items()) or "none"))
    lines.append(f"kept + rejected + skipped = {stats['kept']:,} + {stats['rejected']:,} + {stats['skipped']:,}"
                 f" = {stats['kept'] + stats['rejected'] + stats['skipped']:,} == seen {stats['seen']:,}")
    return "\n".join(lines)
