"""The feedback dashboard: one self-contained HTML page of plots (``GET /dashboard``, ``scripts/feedback_report.py``).

``render_dashboard`` summarises the store's tables with ``feedback_stats`` and draws the result as
inline SVG written here, so the page needs no script, no network and no font download: acceptance
rate per variant × language as bars with 95% Wilson whiskers and the A/B tests' p-values beside
them, TTFT and latency percentiles per variant, completions per time bucket. Every number drawn is
a computed one, and each mark carries it in ``data-*`` attributes (``data-variant``,
``data-language``, ``data-rate``, ``data-p-value``, ...) so a test — or a curious reader of the
source — can read back what was plotted. Names come from users (variants, languages), so every
string goes through ``html.escape``.

Each plot area has its own faint background colour (``PLOT_BACKGROUND``), which lets the screenshot
test find a plot in the rendered page without knowing the layout.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

import pyarrow as pa

from llmfoundry_lite.serve.feedback_stats import PERCENTILES, FeedbackStats, Volume, feedback_stats

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
"""Variant colours, baseline first; the same variant has the same colour in every plot (repeats past 8)."""
PLOT_BACKGROUND = {"acceptance": "#f2f5f9", "ttft_ms": "#f6f3f9", "latency_ms": "#f3f8f4", "volume": "#f9f6f0"}
"""Each plot area's background: distinct, so a plot can be found by colour in a screenshot."""
WIDTH, NARROW, HEIGHT = 700, 520, 300
"""Chart sizes in CSS pixels: acceptance and volume ``WIDTH`` wide, the two timing charts ``NARROW`` side by side."""
MARGIN = {"left": 56, "right": 30, "top": 34, "bottom": 44}
"""Room around the plot area for the title, value labels and axis labels."""
NOTE_LINE = 13
"""Height of one line of notes (the p-values) under a group's label."""
METRIC_TITLES = {"ttft_ms": "Time to first token (ms)", "latency_ms": "Latency, arrival to last token (ms)"}

CSS = """
body { margin: 0; padding: 16px 24px; font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; color: #222;
       background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 22px 0 6px; } h3 { font-size: 14px; margin: 0 0 6px; }
.meta { color: #555; font-size: 13px; margin: 0 0 8px; }
.row { display: flex; gap: 20px; align-items: flex-start; flex-wrap: wrap; }
#legend { list-style: none; padding: 0; margin: 6px 0; display: flex; gap: 18px; font-size: 13px; }
#legend li { display: flex; align-items: center; gap: 6px; }
table { border-collapse: collapse; font-size: 13px; } td, th { padding: 3px 8px; text-align: right; }
th { border-bottom: 1px solid #bbb; } td:first-child, th:first-child { text-align: left; }
#ab-tests { flex: 1 1 320px; } #ab-tests td { white-space: nowrap; }
#ab-tests td:first-child { white-space: normal; overflow-wrap: anywhere; } .note { color: #666; font-size: 12px; max-width: 400px; }
.p-value { font-weight: 600; } .significant { color: #0a7a2f; }
svg text { font-size: 11px; fill: #333; }
"""


@dataclass(frozen=True)
class _Bar:
    """One bar of a grouped bar chart: its value, optional whisker and the attributes it carries."""

    group: str
    variant: str
    value: float
    label: str
    attrs: dict[str, str]
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class _Note:
    """A line under a group's label (a p-value), marked with its variant's colour."""

    colour: str
    text: str
    attrs: dict[str, str]
    bold: bool = False


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f' {k}="{escape(str(v))}"' for k, v in attrs.items())


def _ticks(vmax: float) -> tuple[float, list[float]]:
    """A round top for the y axis and 3-6 ticks from 0 to it."""
    if vmax <= 0:
        return 1.0, [0.0, 0.5, 1.0]
    magnitude = 10.0 ** math.floor(math.log10(vmax / 5))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude * 5 >= vmax)
    n = math.ceil(vmax / step - 1e-9)
    return n * step, [i * step for i in range(n + 1)]


def _plot_size(width: int, notes: int = 0) -> tuple[float, float]:
    """(width, height) of the plot area inside a chart ``width`` wide with ``notes`` lines under its groups."""
    return width - MARGIN["left"] - MARGIN["right"], HEIGHT - MARGIN["top"] - MARGIN["bottom"] - NOTE_LINE * notes


def _frame(chart: str, width: int, title: str, y_top: float, ticks: list[float],
           fmt: Callable[[float], str], notes: int = 0) -> list[str]:
    """The opening of a chart's SVG: plot background (``id="<chart>-plot"``), grid lines, y labels."""
    pw, ph = _plot_size(width, notes)
    x0, y0 = MARGIN["left"], MARGIN["top"]
    parts = [f'<svg id="{chart}-chart" class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" role="img" aria-label="{escape(title)}">',
             f'<text x="{x0}" y="14" style="font-size:13px;font-weight:600">{escape(title)}</text>',
             f'<rect id="{chart}-plot" x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="{PLOT_BACKGROUND[chart]}"/>']
    for t in ticks:
        y = y0 + ph - ph * t / y_top
        parts.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d8d8d8" stroke-width="1"/>')
        parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(t))}</text>')
    return parts


def _grouped_bars(chart: str, width: int, title: str, groups: list[str], variants: tuple[str, ...],
                  bars: list[_Bar], y_top: float, ticks: list[float], fmt: Callable[[float], str],
                  notes: dict[str, list[_Note]] | None = None) -> str:
    """Bars per group (x) and variant (colour), heights ``value / y_top`` of the plot, optional whiskers,
    and ``notes`` (lines of text) under each group's label."""
    notes = notes or {}
    n_notes = max((len(n) for n in notes.values()), default=0)
    pw, ph = _plot_size(width, n_notes)
    x0, base = MARGIN["left"], MARGIN["top"] + ph
    gw = pw / len(groups)
    bw = min(44.0, 0.8 * gw / len(variants))
    parts = _frame(chart, width, title, y_top, ticks, fmt, n_notes)
    for g, group in enumerate(groups):
        cx = x0 + gw * (g + 0.5)
        parts.append(f'<text x="{cx:.1f}" y="{base + 18}" text-anchor="middle">{escape(group)}</text>')
        for k, note in enumerate(notes.get(group, [])):
            weight = ' font-weight="bold"' if note.bold else ""
            parts.append(f'<text class="p-note"{_attrs(note.attrs)} x="{cx:.1f}" y="{base + 32 + NOTE_LINE * k}" '
                         f'text-anchor="middle"{weight}><tspan fill="{note.colour}">■</tspan> {escape(note.text)}</text>')
    for bar in bars:
        g, v = groups.index(bar.group), variants.index(bar.variant)
        x = x0 + gw * (g + 0.5) - bw * len(variants) / 2 + bw * v
        h = ph * bar.value / y_top
        colour = PALETTE[v % len(PALETTE)]
        parts.append(f'<rect class="bar"{_attrs(bar.attrs)} x="{x + 1:.2f}" y="{base - h:.2f}" width="{bw - 2:.2f}" '
                     f'height="{h:.2f}" fill="{colour}" shape-rendering="crispEdges"><title>{escape(bar.label)}</title></rect>')
        top = base - h
        if bar.low is not None and bar.high is not None:
            cx, ylo, yhi = x + bw / 2, base - ph * bar.low / y_top, base - ph * bar.high / y_top
            parts.append(f'<path class="ci" data-low="{bar.low:.6g}" data-high="{bar.high:.6g}" '
                         f'd="M{cx:.1f},{ylo:.1f}V{yhi:.1f}M{cx - 4:.1f},{ylo:.1f}h8M{cx - 4:.1f},{yhi:.1f}h8" '
                         f'stroke="#333" stroke-width="1.5" fill="none"/>')
            top = yhi
        parts.append(f'<text class="value" x="{x + bw / 2:.1f}" y="{top - 4:.1f}" text-anchor="middle">'
                     f'{escape(fmt(bar.value))}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _p_text(p: float) -> str:
    return f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}"


def _acceptance_chart(stats: FeedbackStats) -> str:
    """Rate per variant in each language (and over all languages first), with 95% Wilson whiskers."""
    languages = sorted({a.language for a in stats.by_language if a.language is not None})
    groups = ["all languages", *languages]
    bars = [_Bar("all languages" if a.language is None else a.language, a.variant, a.rate,
                 f"{a.variant} · {a.language or 'all languages'}: {a.accepted}/{a.shown} accepted "
                 f"({100 * a.rate:.1f}%, 95% CI {100 * a.low:.1f}–{100 * a.high:.1f}%)",
                 {"data-variant": a.variant, "data-language": a.language or "", "data-rate": f"{a.rate:.6g}",
                  "data-shown": str(a.shown), "data-accepted": str(a.accepted)}, a.low, a.high)
            for a in (*stats.by_variant, *stats.by_language)]
    notes: dict[str, list[_Note]] = {}
    for c in stats.comparisons:
        if c.p_value is not None:
            colour = PALETTE[stats.variants.index(c.variant) % len(PALETTE)]
            notes.setdefault(c.language or "all languages", []).append(_Note(
                colour, _p_text(c.p_value), {"data-variant": c.variant, "data-language": c.language or "",
                                             "data-p-value": f"{c.p_value:.6g}"}, c.p_value < 0.05))
    return _grouped_bars("acceptance", WIDTH, "Acceptance rate (accepted or edited / shown), 95% CI; p vs baseline", groups,
                         stats.variants, bars, 1.0, [0, 0.25, 0.5, 0.75, 1.0], _pct, notes)


def _ab_panel(stats: FeedbackStats) -> str:
    """The two-proportion tests beside the acceptance plot: overall and per language."""
    rows = []
    for c in stats.comparisons:
        lang = c.language or "all languages"
        attrs = {"data-variant": c.variant, "data-baseline": c.baseline, "data-language": c.language or ""}
        if c.p_value is None or c.z is None or c.diff is None:
            rows.append(f'<tr class="comparison"{_attrs(attrs)}><td>{escape(c.variant)}</td><td>{escape(lang)}</td>'
                        '<td colspan="3">no feedback on one side</td></tr>')
            continue
        attrs |= {"data-p-value": f"{c.p_value:.6g}", "data-z": f"{c.z:.6g}", "data-diff": f"{c.diff:.6g}"}
        cls = "p-value significant" if c.p_value < 0.05 else "p-value"
        weight = ' style="font-weight:600"' if c.language is None else ""
        rows.append(f'<tr class="comparison"{_attrs(attrs)}{weight}><td>{escape(c.variant)}</td><td>{escape(lang)}</td>'
                    f'<td>{100 * c.diff:+.1f} pts</td><td>z = {c.z:.2f}</td><td class="{cls}">{_p_text(c.p_value)}</td></tr>')
    body = ("<table><tr><th>variant</th><th>language</th><th>Δ rate</th><th>z</th><th>p</th></tr>"
            + "".join(rows) + "</table>") if rows else '<p class="note">Only one variant: nothing to compare.</p>'
    return (f'<aside id="ab-tests"><h3>A/B tests against the baseline <code>{escape(stats.baseline or "")}</code></h3>'
            f'{body}<p class="note">Pooled two-proportion z-test, two-sided; p &lt; 0.05 in green. '
            'Each row is its own test (no multiple-comparison correction).</p></aside>')


def _timing_chart(stats: FeedbackStats, metric: str) -> str:
    """p50/p90/p99 of one timing, one bar per variant in each percentile group."""
    groups = [f"p{q}" for q in PERCENTILES]
    rows = [t for t in stats.timings if t.metric == metric]
    if not rows:
        return f'<p class="note" id="{metric}-none">No {escape(METRIC_TITLES[metric])} recorded.</p>'
    top, ticks = _ticks(max(max(t.values) for t in rows) * 1.05)  # headroom for the value labels
    bars = [_Bar(f"p{q}", t.variant, value, f"{t.variant} p{q}: {value:.1f} ms over {t.count} completions",
                 {"data-variant": t.variant, "data-metric": metric, "data-q": str(q), "data-value": f"{value:.6g}"})
            for t in rows for q, value in zip(PERCENTILES, t.values, strict=True)]
    return _grouped_bars(metric, NARROW, METRIC_TITLES[metric], groups, stats.variants, bars, top, ticks, lambda v: f"{v:.4g}")


def _volume_chart(vol: Volume) -> str:
    """Completions per time bucket, stacked by variant."""
    pw, ph = _plot_size(WIDTH)
    x0, base = MARGIN["left"], MARGIN["top"] + ph
    top, ticks = _ticks(max(sum(row) for row in vol.counts))
    size = f"{vol.bucket_s // 86400} d" if vol.bucket_s >= 86400 else (
        f"{vol.bucket_s // 3600} h" if vol.bucket_s >= 3600 else f"{vol.bucket_s // 60} min")
    parts = _frame("volume", WIDTH, f"Completions per {size} (UTC)", top, ticks, lambda v: f"{v:g}")
    bw = pw / len(vol.starts)
    stamp = "%Y-%m-%d" if vol.bucket_s >= 86400 else "%m-%d %H:%M"
    every = max(1, len(vol.starts) // 6)
    for i, (start, row) in enumerate(zip(vol.starts, vol.counts, strict=True)):
        y = float(base)
        for j, count in enumerate(row):
            if not count:
                continue
            h = ph * count / top
            y -= h
            parts.append(f'<rect class="bar" data-variant="{escape(vol.variants[j])}" data-start="{start:.0f}" '
                         f'data-count="{count}" x="{x0 + bw * i + 0.5:.2f}" y="{y:.2f}" width="{max(bw - 1, 1):.2f}" '
                         f'height="{h:.2f}" fill="{PALETTE[j % len(PALETTE)]}" shape-rendering="crispEdges">'
                         f'<title>{escape(vol.variants[j])}: {count}</title></rect>')
        if i % every == 0:
            label = time.strftime(stamp, time.gmtime(start))
            parts.append(f'<text x="{x0 + bw * (i + 0.5):.1f}" y="{base + 18}" text-anchor="middle">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(stats: FeedbackStats) -> str:
    items = []
    for j, v in enumerate(stats.variants):
        tag = " · baseline" if v == stats.baseline else ""
        items.append(f'<li data-variant="{escape(v)}" data-colour="{PALETTE[j % len(PALETTE)]}">'
                     f'<svg width="14" height="14"><rect width="14" height="14" fill="{PALETTE[j % len(PALETTE)]}"/></svg>'
                     f'{escape(v)} ({stats.completions[v]} completions){tag}</li>')
    return f'<ul id="legend">{"".join(items)}</ul>'


def _table(stats: FeedbackStats) -> str:
    """The acceptance numbers as a table, for those who do want to read."""
    rows = "".join(
        f'<tr data-variant="{escape(a.variant)}" data-language="{escape(a.language or "")}"><td>{escape(a.variant)}</td>'
        f'<td>{escape(a.language or "all languages")}</td><td>{a.shown}</td><td>{a.accepted}</td>'
        f'<td>{100 * a.rate:.1f}%</td><td>{100 * a.low:.1f}–{100 * a.high:.1f}%</td></tr>'
        for a in (*stats.by_variant, *stats.by_language))
    return ('<table id="acceptance-table"><tr><th>variant</th><th>language</th><th>shown</th><th>accepted</th>'
            f'<th>rate</th><th>95% CI</th></tr>{rows}</table>')


def _page(title: str, generated_at: float, body: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(generated_at))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>\n'
            f'<body><h1 id="title">{escape(title)}</h1><p class="meta" id="generated" data-generated-at="{generated_at:.3f}">'
            f'Generated {stamp}</p>\n{body}\n</body></html>\n')


def render_dashboard(completions: pa.Table, feedback: pa.Table, *, title: str, generated_at: float,
                     baseline: str | None = None) -> str:
    """The dashboard page for the store's tables (``FeedbackStore.tables()`` or a Parquet export).

    ``baseline`` names the variant the others are tested against (default: the one with the most
    completions; a name that served nothing is a ``ValueError`` listing those that did). Tables
    without completions give a page saying there is no feedback yet.
    """
    stats = feedback_stats(completions, feedback, baseline=baseline)
    return render_stats(stats, title=title, generated_at=generated_at)


def render_stats(stats: FeedbackStats, *, title: str, generated_at: float) -> str:
    """The dashboard page for statistics already computed (``render_dashboard`` computes them from the tables)."""
    dropped = ""
    if stats.unmatched_feedback or stats.unknown_events:
        dropped = (f' <span id="dropped" data-unmatched="{stats.unmatched_feedback}" data-unknown="{stats.unknown_events}">'
                   f'Not counted: {stats.unmatched_feedback} feedback rows for completions not in the table, '
                   f'{stats.unknown_events} with an unknown event.</span>')
    if not stats.variants:
        return _page(title, generated_at, f'<p id="no-feedback" class="meta">No feedback yet: the store holds no '
                                          f'completions.{dropped}</p>')
    shown = sum(a.shown for a in stats.by_variant)
    accepted = sum(a.accepted for a in stats.by_variant)
    summary = (f'<p class="meta" id="summary" data-completions="{sum(stats.completions.values())}" data-shown="{shown}" '
               f'data-accepted="{accepted}">{sum(stats.completions.values())} completions, {shown} choices shown, '
               f'{accepted} accepted; baseline <code>{escape(stats.baseline or "")}</code>.{dropped}</p>')
    if stats.by_variant:
        acceptance = f'<div class="row">{_acceptance_chart(stats)}{_ab_panel(stats)}</div>'
        table = f'<h2>Acceptance in numbers</h2>{_table(stats)}'
    else:
        acceptance = '<p id="no-feedback" class="meta">No feedback yet: no completion has a feedback event.</p>'
        table = ""
    timings = f'<div class="row">{_timing_chart(stats, "ttft_ms")}{_timing_chart(stats, "latency_ms")}</div>'
    volume = _volume_chart(stats.volume) if stats.volume is not None else ""
    # plots first, so they fit the first screen; the table for readers comes last
    body = (f'{summary}{_legend(stats)}<h2>Acceptance by variant and language</h2>{acceptance}'
            f'<h2>Time to first token and latency</h2>{timings}<h2>Volume</h2>{volume}{table}')
    return _page(title, generated_at, body)
