"""feedback_stats: Wilson intervals, the two-proportion test, acceptance, timings and volume, against values
computed by hand or by an independent route (scipy's binomtest intervals, the 2×2 chi-square, a dict-based count)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as sps

from llmfoundry_lite.serve.feedback_stats import (
    KNOWN_EVENTS,
    MAX_BUCKETS,
    PERCENTILES,
    bucket_size,
    feedback_stats,
    two_proportion_z,
    wilson_interval,
)


def completions_table(rows: list[tuple]) -> pa.Table:
    """(id, created, model, language, latency_ms, ttft_ms) rows → a completions table (the columns stats reads)."""
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 6
    return pa.table({"id": pa.array(cols[0], pa.string()), "created": pa.array(cols[1], pa.float64()),
                     "model": pa.array(cols[2], pa.string()), "language": pa.array(cols[3], pa.string()),
                     "latency_ms": pa.array(cols[4], pa.float64()), "ttft_ms": pa.array(cols[5], pa.float64())})


def feedback_table(rows: list[tuple]) -> pa.Table:
    """(completion_id, choice, event) rows → a feedback table."""
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 3
    return pa.table({"completion_id": pa.array(cols[0], pa.string()), "choice": pa.array(cols[1], pa.int32()),
                     "event": pa.array(cols[2], pa.string())})


def test_wilson_interval_by_hand() -> None:
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    low, high = wilson_interval(0, 10)  # p = 0: the interval still has width, unlike the normal approximation's
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "n"), [(1, 1), (3, 7), (50, 100), (999, 1000), (17, 4000)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_two_proportion_z_by_hand_and_as_chi_square() -> None:
    z, p = two_proportion_z(45, 100, 30, 100)  # pooled 0.375, se sqrt(0.375 * 0.625 * 0.02) = 0.068465
    assert z == pytest.approx(0.15 / math.sqrt(0.375 * 0.625 * 0.02)) and z == pytest.approx(2.1909, abs=1e-4)
    assert p == pytest.approx(0.02846, abs=1e-5)
    # the pooled z-test is the 2×2 Pearson chi-square without continuity correction: z² = chi², same p
    for x1, n1, x2, n2 in [(45, 100, 30, 100), (3, 17, 9, 12), (400, 1000, 380, 900)]:
        z, p = two_proportion_z(x1, n1, x2, n2)
        chi2, p_chi, _, _ = sps.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
        assert z * z == pytest.approx(chi2) and p == pytest.approx(p_chi)
        assert p == pytest.approx(2 * sps.norm.sf(abs(z)))
    assert two_proportion_z(0, 10, 0, 20) == (0.0, 1.0)  # nothing accepted on either side: no difference
    with pytest.raises(ValueError, match="n1 > 0"):
        two_proportion_z(0, 0, 1, 2)


def test_known_events_are_the_stores() -> None:
    from llmfoundry_lite.serve.feedback_store import EVENTS

    assert KNOWN_EVENTS == tuple(EVENTS)


SMALL_COMPLETIONS = [
    ("c1", 1000.0, "a", "python", 10.0, 1.0), ("c2", 1010.0, "a", "python", 20.0, None),
    ("c3", 1020.0, "a", "go", 30.0, 3.0), ("c4", 1030.0, "a", None, 40.0, 4.0),
    ("c5", 1040.0, "b", "python", 100.0, 10.0), ("c6", 1100.0, "b", "go", 200.0, 20.0),
]
SMALL_FEEDBACK = [
    ("c1", 0, "shown"), ("c1", 0, "accepted"), ("c1", 0, "accepted"),  # one choice, accepted (twice)
    ("c1", 1, "rejected"),  # another choice of c1: shown (it has an event), not accepted
    ("c2", 0, "edited"),  # edited counts as accepted, no "shown" needed
    ("c3", 0, "shown"),  # shown only
    ("c4", 0, "accepted"),  # null language → unknown
    ("c5", 0, "shown"), ("c5", 0, "edited"), ("c6", 0, "rejected"), ("c6", 1, "accepted"),
    ("gone", 0, "accepted"), ("c3", 0, "clicked"), ("c3", 0, None),  # counted, not used
]


def test_acceptance_by_variant_and_language() -> None:
    st = feedback_stats(completions_table(SMALL_COMPLETIONS), feedback_table(SMALL_FEEDBACK))
    assert st.baseline == "a" and st.variants == ("a", "b") and st.completions == {"a": 4, "b": 2}
    overall = {a.variant: (a.shown, a.accepted) for a in st.by_variant}
    assert overall == {"a": (5, 3), "b": (3, 2)}
    per = {(a.variant, a.language): (a.shown, a.accepted) for a in st.by_language}
    assert per == {("a", "python"): (3, 2), ("a", "go"): (1, 0), ("a", "unknown"): (1, 1),
                   ("b", "python"): (1, 1), ("b", "go"): (2, 1)}
    a_py = next(a for a in st.by_language if (a.variant, a.language) == ("a", "python"))
    assert a_py.rate == pytest.approx(2 / 3) and (a_py.low, a_py.high) == pytest.approx(wilson_interval(2, 3))
    assert [(a.language, a.variant) for a in st.by_language] == sorted((a.language, a.variant) for a in st.by_language)
    assert (st.feedback_rows, st.unmatched_feedback, st.unknown_events) == (len(SMALL_FEEDBACK), 1, 2)
    # b against the baseline a: overall, then the languages both were shown in (not "unknown")
    assert [(c.variant, c.baseline, c.language) for c in st.comparisons] == [
        ("b", "a", None), ("b", "a", "go"), ("b", "a", "python")]
    z, p = two_proportion_z(2, 3, 3, 5)
    assert (st.comparisons[0].z, st.comparisons[0].p_value) == pytest.approx((z, p))
    assert st.comparisons[0].diff == pytest.approx(2 / 3 - 3 / 5)


def test_baseline_named_tied_and_unknown() -> None:
    comp = completions_table(SMALL_COMPLETIONS[:2] + SMALL_COMPLETIONS[4:])  # a: 2, b: 2 → tie, by name
    assert feedback_stats(comp, feedback_table([])).baseline == "a"
    st = feedback_stats(completions_table(SMALL_COMPLETIONS), feedback_table(SMALL_FEEDBACK), baseline="b")
    assert st.variants == ("b", "a") and [c.variant for c in st.comparisons][:1] == ["a"]
    with pytest.raises(ValueError, match=r"baseline 'nope' served no completion; choose from \['a', 'b'\]"):
        feedback_stats(completions_table(SMALL_COMPLETIONS), feedback_table([]), baseline="nope")


def test_a_variant_without_feedback_gets_no_test() -> None:
    st = feedback_stats(completions_table(SMALL_COMPLETIONS), feedback_table([("c5", 0, "accepted")]))
    assert [(a.variant, a.shown) for a in st.by_variant] == [("b", 1)]
    assert [(c.variant, c.p_value, c.z) for c in st.comparisons] == [("b", None, None)]


def test_timing_percentiles() -> None:
    st = feedback_stats(completions_table(SMALL_COMPLETIONS), feedback_table([]))
    got = {(t.variant, t.metric): (t.count, t.values) for t in st.timings}
    assert PERCENTILES == (50, 90, 99)
    # a's latencies 10, 20, 30, 40: linear interpolation at rank q/100 * 3
    assert got[("a", "latency_ms")] == (4, pytest.approx((25.0, 37.0, 39.7)))
    assert got[("a", "ttft_ms")] == (3, pytest.approx((3.0, 3.8, 3.98)))  # c2's null TTFT is left out
    assert got[("b", "latency_ms")] == (2, pytest.approx((150.0, 190.0, 199.0)))


def test_bucket_size_from_span() -> None:
    assert bucket_size(0) == 60 and bucket_size(60 * (MAX_BUCKETS - 1)) == 60
    assert bucket_size(60 * (MAX_BUCKETS - 1) + 1) == 300
    assert bucket_size(40 * 86400) == 86400 and bucket_size(200 * 86400) == 7 * 86400
    assert bucket_size(1000 * 86400) == 17 * 86400  # past the ladder: whole days, ceil(1000 / 59)


def test_volume_per_bucket_and_variant() -> None:
    st = feedback_stats(completions_table(SMALL_COMPLETIONS), feedback_table([]))
    vol = st.volume
    assert vol is not None and vol.bucket_s == 60 and vol.variants == ("a", "b")
    # created 1000..1100 s, one-minute buckets aligned down: [960, 1020, 1080]
    assert vol.starts == (960.0, 1020.0, 1080.0)
    assert vol.counts == ((2, 0), (2, 1), (0, 1))


def test_many_buckets_stay_within_the_limit() -> None:
    rng = np.random.default_rng(1)
    created = 1.7e9 + rng.uniform(0, 90 * 86400, 5000)
    comp = pa.table({"id": [f"c{i}" for i in range(5000)], "created": created, "model": ["m"] * 5000,
                     "language": ["go"] * 5000, "latency_ms": np.ones(5000), "ttft_ms": np.ones(5000)})
    vol = feedback_stats(comp, feedback_table([])).volume
    assert vol is not None and len(vol.starts) <= MAX_BUCKETS and sum(r[0] for r in vol.counts) == 5000


def test_empty_and_malformed_tables() -> None:
    st = feedback_stats(completions_table([]), feedback_table([]))
    assert (st.variants, st.baseline, st.by_variant, st.comparisons, st.volume) == ((), None, (), (), None)
    st = feedback_stats(pa.table({}), pa.table({}))  # no columns at all: still nothing, not a crash
    assert st.variants == () and st.feedback_rows == 0
    st = feedback_stats(completions_table([]), feedback_table([("c1", 0, "accepted")]))
    assert st.unmatched_feedback == 1 and st.by_variant == ()
    with pytest.raises(ValueError, match=r"completions table lacks column\(s\) \['latency_ms', 'ttft_ms'\]"):
        feedback_stats(completions_table(SMALL_COMPLETIONS).drop_columns(["latency_ms", "ttft_ms"]), feedback_table([]))


def test_matches_a_row_by_row_count_on_random_data() -> None:
    """Many rows, every event mix: the group-bys agree with a plain dictionary count."""
    rng = np.random.default_rng(0)
    n = 3000
    models, langs = rng.choice(["x", "y", "z"], n), rng.choice(["python", "go", "rust"], n)
    comp = completions_table([(f"c{i}", float(i), models[i], langs[i], 1.0, 1.0) for i in range(n)])
    events = [(f"c{rng.integers(0, n + 50)}", int(rng.integers(0, 3)), str(rng.choice(KNOWN_EVENTS)))
              for _ in range(8000)]
    st = feedback_stats(comp, feedback_table(events))
    seen: dict[tuple[str, int], bool] = {}
    for cid, choice, event in events:
        if int(cid[1:]) < n:
            seen[(cid, choice)] = seen.get((cid, choice), False) or event in ("accepted", "edited")
    want: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (cid, _), accepted in seen.items():
        i = int(cid[1:])
        want[(models[i], langs[i])][0] += 1
        want[(models[i], langs[i])][1] += accepted
    assert {(a.variant, a.language): [a.shown, a.accepted] for a in st.by_language} == dict(want)
    assert st.unmatched_feedback == sum(int(cid[1:]) >= n for cid, _, _ in events)
