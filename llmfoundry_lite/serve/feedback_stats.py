"""What the feedback store's tables say: acceptance per variant × language, A/B tests, latency, volume.

Reads the two tables of ``FeedbackStore.tables()`` (or of a Parquet export): ``completions`` (one row
per response) and ``feedback`` (one row per completion, choice and event). A choice is *shown* when it
has any feedback event and *accepted* when one of them is ``accepted`` or ``edited``; the acceptance
rate is accepted / shown, with a 95% Wilson score interval (Wilson 1927: it stays inside [0, 1] and
keeps its coverage at small counts, where the normal approximation does not). Each variant is compared
with the baseline by a pooled two-proportion z-test, overall and per language; the p-values are
per comparison, not corrected for how many are shown.

The work is group-bys over Arrow tables and NumPy arrays, never a Python loop over rows, so a store
with millions of events summarises in seconds. Rows that cannot be used are counted, not hidden:
feedback on a completion the table does not hold, and events the store does not know.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KNOWN_EVENTS = ("shown", "accepted", "rejected", "edited")
"""The store's ``EVENTS`` (``feedback_store.py``), repeated so a Parquet export is read without SQLAlchemy;
``tests/serve/test_feedback_stats.py`` checks the two agree."""
ACCEPTING_EVENTS = ("accepted", "edited")
"""Events that make a shown choice count as accepted: an edit keeps part of the suggestion."""
Z95 = 1.959963984540054
"""The standard normal quantile of 0.975: two-sided 95% intervals."""
PERCENTILES = (50, 90, 99)
"""The latency percentiles reported per variant."""
BUCKET_LADDER_S = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
"""Volume bucket sizes, tried smallest first; the first that covers the span in ``MAX_BUCKETS`` wins."""
MAX_BUCKETS = 60
"""The most time buckets the volume plot gets: enough to see a trend, few enough to read."""
COMPLETION_COLUMNS = ("id", "created", "model", "language", "latency_ms", "ttft_ms")
FEEDBACK_COLUMNS = ("completion_id", "choice", "event")


@dataclass(frozen=True)
class Acceptance:
    """Acceptance of one variant in one language (``language`` None: all its languages)."""

    variant: str
    language: str | None
    shown: int
    """Choices with any feedback event."""
    accepted: int
    """Of those, choices with an ``accepted`` or ``edited`` event."""
    rate: float
    low: float
    """Lower end of the 95% Wilson interval."""
    high: float
    """Upper end of the 95% Wilson interval."""


@dataclass(frozen=True)
class Comparison:
    """A pooled two-proportion z-test of ``variant`` against ``baseline`` (``language`` None: all languages)."""

    variant: str
    baseline: str
    language: str | None
    diff: float | None
    """``variant``'s rate minus the baseline's; None when either has nothing shown."""
    z: float | None
    p_value: float | None
    """Two-sided; None when either side has nothing shown (no test is possible)."""


@dataclass(frozen=True)
class Percentiles:
    """Percentiles (``PERCENTILES``) of one timing (``ttft_ms`` or ``latency_ms``) of one variant."""

    variant: str
    metric: str
    count: int
    """Completions with this timing (``ttft_ms`` is null where a backend does not report it)."""
    values: tuple[float, ...]
    """One value per entry of ``PERCENTILES``, in milliseconds."""


@dataclass(frozen=True)
class Volume:
    """Completions per time bucket and variant."""

    bucket_s: int
    starts: tuple[float, ...]
    """Unix seconds at which each bucket starts (aligned to multiples of ``bucket_s``)."""
    variants: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    """``counts[i][j]``: completions of ``variants[j]`` in bucket ``i``."""


@dataclass(frozen=True)
class FeedbackStats:
    """Everything the dashboard and the report print."""

    variants: tuple[str, ...]
    """Baseline first, then the others by name."""
    completions: dict[str, int]
    """Completions per variant."""
    baseline: str | None
    by_variant: tuple[Acceptance, ...]
    by_language: tuple[Acceptance, ...]
    comparisons: tuple[Comparison, ...]
    """Each non-baseline variant against the baseline: overall first, then per language both were shown in."""
    timings: tuple[Percentiles, ...]
    volume: Volume | None
    feedback_rows: int
    unmatched_feedback: int
    """Feedback rows whose completion id is not in ``completions`` (counted, not used)."""
    unknown_events: int
    """Feedback rows whose event is not one of ``KNOWN_EVENTS`` (counted, not used)."""


def wilson_interval(accepted: int, shown: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``accepted / shown``; (0, 1) when nothing was shown."""
    if shown <= 0:
        return 0.0, 1.0
    p = accepted / shown
    z2n = z * z / shown
    center = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / shown + z2n / (4 * shown))
    return max(0.0, center - half), min(1.0, center + half)


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Pooled z statistic of ``x1/n1 - x2/n2`` and its two-sided p-value (both counts must be shown > 0).

    When the pooled rate is 0 or 1 both rates are equal and the test says so: z 0, p 1.
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"two_proportion_z needs n1 > 0 and n2 > 0, got n1={n1}, n2={n2}")
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    return z, math.erfc(abs(z) / math.sqrt(2))  # 2 * (1 - Phi(|z|))


def _require(table: pa.Table, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {missing}; it has {table.column_names}")


def _fill_names(completions: pa.Table) -> pa.Table:
    """Null variant or language names read as ``unknown`` (the store writes none; a hand-made export might)."""
    for name in ("model", "language"):
        i = completions.column_names.index(name)
        completions = completions.set_column(i, name, pc.fill_null(completions[name], "unknown"))
    return completions


def _acceptance(rows: pa.Table, keys: list[str]) -> list[Acceptance]:
    """One ``Acceptance`` per group of ``keys`` over rows of (model, language, acc) choices."""
    grouped = rows.group_by(keys).aggregate([("acc", "sum"), ("acc", "count")]).to_pydict()
    out = []
    for i, variant in enumerate(grouped["model"]):
        shown, accepted = int(grouped["acc_count"][i]), int(grouped["acc_sum"][i])
        low, high = wilson_interval(accepted, shown)
        language = grouped["language"][i] if "language" in keys else None
        out.append(Acceptance(variant, language, shown, accepted, accepted / shown, low, high))
    return out


def _choices(completions: pa.Table, feedback: pa.Table) -> tuple[pa.Table, int, int]:
    """(model, language, acc) per shown choice, the unmatched feedback rows and the unknown-event rows."""
    known = pc.fill_null(pc.is_in(feedback["event"], value_set=pa.array(KNOWN_EVENTS)), False)
    unknown = len(feedback) - pc.sum(known).as_py()
    fb = feedback.filter(known)
    acc = pc.cast(pc.is_in(fb["event"], value_set=pa.array(ACCEPTING_EVENTS)), pa.int64())
    fb = pa.table({"completion_id": fb["completion_id"], "choice": fb["choice"], "acc": acc})
    choices = fb.group_by(["completion_id", "choice"]).aggregate([("acc", "max"), ("acc", "count")])
    # a left join keeps choices of completions the table lacks (model null): their rows are counted, then dropped
    meta = completions.select(["id", "model", "language"])
    joined = choices.join(meta, keys="completion_id", right_keys="id", join_type="left outer")
    matched = pc.is_valid(joined["model"])
    unmatched = pc.sum(joined.filter(pc.invert(matched))["acc_count"]).as_py() or 0
    joined = joined.filter(matched)
    return pa.table({"model": joined["model"], "language": joined["language"], "acc": joined["acc_max"]}), unmatched, unknown


def _order(counts: dict[str, int], baseline: str | None) -> tuple[str | None, tuple[str, ...]]:
    """The baseline (named, else the variant with most completions; ties by name) and the variant order."""
    if not counts:
        return None, ()
    if baseline is not None and baseline not in counts:
        raise ValueError(f"baseline {baseline!r} served no completion; choose from {sorted(counts)}")
    base = baseline if baseline is not None else min(counts, key=lambda v: (-counts[v], v))
    return base, (base, *sorted(v for v in counts if v != base))


def _comparisons(base: str, variants: tuple[str, ...], by_variant: list[Acceptance],
                 by_language: list[Acceptance]) -> list[Comparison]:
    """Each variant against ``base``: overall, then in each language both were shown in."""
    overall = {a.variant: a for a in by_variant}
    per_lang = {(a.variant, a.language): a for a in by_language}
    languages = sorted({a.language for a in by_language if a.language is not None})
    out = []
    for variant in variants[1:]:
        pairs = [(None, overall.get(variant), overall.get(base))]
        pairs += [(lang, per_lang[(variant, lang)], per_lang[(base, lang)]) for lang in languages
                  if (variant, lang) in per_lang and (base, lang) in per_lang]
        for lang, a, b in pairs:
            if a is None or b is None:
                out.append(Comparison(variant, base, lang, None, None, None))
                continue
            z, p = two_proportion_z(a.accepted, a.shown, b.accepted, b.shown)
            out.append(Comparison(variant, base, lang, a.rate - b.rate, z, p))
    return out


def _group_indices(models: pa.ChunkedArray, variants: tuple[str, ...]) -> np.ndarray:
    """Each row's position in ``variants`` (every model is one of them)."""
    return pc.index_in(models, value_set=pa.array(variants)).to_numpy(zero_copy_only=False).astype(np.int64)


def _timings(completions: pa.Table, variants: tuple[str, ...]) -> list[Percentiles]:
    """Percentiles of TTFT and latency per variant: one sort, then a split at each variant's boundary."""
    idx = _group_indices(completions["model"], variants)
    out = []
    for metric in ("ttft_ms", "latency_ms"):
        values = pc.cast(completions[metric], pa.float64()).to_numpy(zero_copy_only=False)  # null → NaN
        ok = ~np.isnan(values)
        order = np.lexsort((values[ok], idx[ok]))
        grouped_idx, grouped_values = idx[ok][order], values[ok][order]
        bounds = np.searchsorted(grouped_idx, np.arange(len(variants) + 1))
        for j, variant in enumerate(variants):
            chunk = grouped_values[bounds[j]:bounds[j + 1]]
            if len(chunk):
                out.append(Percentiles(variant, metric, len(chunk), tuple(float(q) for q in np.percentile(chunk, PERCENTILES))))
    return out


def bucket_size(span_s: float) -> int:
    """The smallest ``BUCKET_LADDER_S`` size that covers ``span_s`` in at most ``MAX_BUCKETS`` buckets
    (whole days beyond the ladder)."""
    for size in BUCKET_LADDER_S:
        if span_s <= size * (MAX_BUCKETS - 1):  # one bucket spare: starts are aligned down
            return size
    return 86400 * math.ceil(span_s / (86400 * (MAX_BUCKETS - 1)))


def _volume(completions: pa.Table, variants: tuple[str, ...]) -> Volume:
    created = pc.cast(completions["created"], pa.float64()).to_numpy(zero_copy_only=False)
    first, last = float(np.min(created)), float(np.max(created))
    size = bucket_size(last - first)
    start = math.floor(first / size)
    bucket = np.floor(created / size).astype(np.int64) - start
    n_buckets = int(bucket.max()) + 1
    idx = _group_indices(completions["model"], variants)
    counts = np.bincount(bucket * len(variants) + idx, minlength=n_buckets * len(variants))
    counts = counts.reshape(n_buckets, len(variants))
    starts = tuple(float((start + i) * size) for i in range(n_buckets))
    return Volume(size, starts, variants, tuple(tuple(int(c) for c in row) for row in counts))


def feedback_stats(completions: pa.Table, feedback: pa.Table, *, baseline: str | None = None) -> FeedbackStats:
    """Summarise the store's two tables (see the module docstring); ``baseline`` names the variant the
    others are tested against (default: the one with the most completions)."""
    if completions.num_rows:
        _require(completions, COMPLETION_COLUMNS, "completions")
        completions = _fill_names(completions)
        counted = completions.group_by("model").aggregate([("id", "count")]).to_pydict()
        counts = {m: int(c) for m, c in zip(counted["model"], counted["id_count"], strict=True)}
    else:
        counts = {}
    base, variants = _order(counts, baseline)
    rows, unmatched, unknown = None, 0, 0
    if feedback.num_rows:
        _require(feedback, FEEDBACK_COLUMNS, "feedback")
        if completions.num_rows:
            rows, unmatched, unknown = _choices(completions, feedback)
        else:  # feedback whose completions are gone (retention): every row is unmatched
            unmatched = feedback.num_rows
    by_variant = _acceptance(rows, ["model"]) if rows is not None and rows.num_rows else []
    by_language = _acceptance(rows, ["model", "language"]) if rows is not None and rows.num_rows else []
    rank = {v: i for i, v in enumerate(variants)}
    by_variant.sort(key=lambda a: rank[a.variant])
    by_language.sort(key=lambda a: (a.language, rank[a.variant]))
    return FeedbackStats(
        variants=variants, completions={v: counts[v] for v in variants}, baseline=base,
        by_variant=tuple(by_variant), by_language=tuple(by_language),
        comparisons=tuple(_comparisons(base, variants, by_variant, by_language)) if base else (),
        timings=tuple(_timings(completions, variants)) if variants else (),
        volume=_volume(completions, variants) if variants else None,
        feedback_rows=feedback.num_rows, unmatched_feedback=unmatched, unknown_events=unknown,
    )
