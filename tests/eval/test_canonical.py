"""Every canonical HumanEval solution passes in the sandbox; obviously wrong ones fail."""

from __future__ import annotations

from llmfoundry_lite.eval.execution import execute_samples
from llmfoundry_lite.eval.passk import pass_at_k


def test_all_164_canonical_solutions_pass(sandbox, problems):
    assert len(problems) == 164
    samples = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()]
    results = execute_samples(problems, samples, sandbox, workers=2)
    failed = [(r["task_id"], r["result"]) for r in results if not r["passed"]]
    assert failed == []
    assert pass_at_k(results, [1]) == {"pass@1": 1.0}
    assert [r["task_id"] for r in results] == list(problems)  # input order kept


def test_obviously_wrong_solutions_fail(sandbox, problems):
    wrong = ["    return None\n", "    pass\n", "    raise NotImplementedError\n", "    return 0 +\n"]
    subset = dict(list(problems.items())[:10])
    samples = [{"task_id": t, "completion": w} for t in subset for w in wrong]
    results = execute_samples(subset, samples, sandbox, workers=2)
    assert sum(r["passed"] for r in results) == 0
    syntax = [r["result"] for r in results if r["completion"] == "    return 0 +\n"]
    assert all(s.startswith("failed: invalid syntax") for s in syntax)
    assert pass_at_k(results, [1, 4]) == {"pass@1": 0.0, "pass@4": 0.0}


def test_canonical_solution_of_another_problem_fails(sandbox, problems):
    ids = list(problems)[:6]
    samples = [{"task_id": a, "completion": problems[b]["canonical_solution"]} for a, b in zip(ids, ids[1:] + ids[:1], strict=True)]
    results = execute_samples(problems, samples, sandbox, workers=2)
    assert [r["passed"] for r in results] == [False] * 6
