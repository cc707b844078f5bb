"""``--select vote``: samples that agree on the docstring examples win; the selection is scored."""

from __future__ import annotations

import pytest

from llmfoundry_lite.cli.humaneval import parse_args, run
from llmfoundry_lite.config import ConfigError
from llmfoundry_lite.corpus.benchmarks import write_jsonl
from llmfoundry_lite.eval.execution import execute_samples
from llmfoundry_lite.eval.selection import example_inputs, vote

TRUNCATE = ["    return 0.0\n", "    return number % 1.0\n", "    return number - int(number)\n"]  # wrong, right, right


def test_example_inputs_are_the_literal_calls_of_the_docstring(problems):
    assert example_inputs(problems["HumanEval/0"]) == [([1.0, 2.0, 3.0], 0.5), ([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)]
    assert example_inputs(problems["HumanEval/2"]) == [(3.5,)]
    # prose examples count too, parentheses inside strings do not end a call, repeats are run once
    assert example_inputs(problems["HumanEval/151"]) == [([1, 3, 2, 0],), ([-1, -2, 0],), ([9, -2],), ([0],)]
    assert example_inputs(problems["HumanEval/61"]) == [("(",), ("()",), ("(()())",), (")(()",)]
    assert example_inputs({"entry_point": "f", "prompt": 'def f(n: int) -> int:\n    """f(n) is n + 1: f(1) == 2,\n'
                           '    >>> f(1)\n    2\n    f(x=3), g.f(4), f(\n        5)\n    """\n'}) == [(1,), (5,)]
    with_examples = sum(bool(example_inputs(p)) for p in problems.values())
    assert with_examples == 141  # of 164; 69 have ">>>" lines


def test_the_largest_agreeing_group_is_selected(sandbox, problems):
    subset = {t: problems[t] for t in ("HumanEval/2",)}
    samples = [{"task_id": "HumanEval/2", "completion": c} for c in TRUNCATE]
    results = execute_samples(subset, samples, sandbox, workers=2)
    assert [r["passed"] for r in results] == [False, True, True]
    picked = vote(subset, results, sandbox, workers=2)
    assert picked["selected"] == {"HumanEval/2": 1}  # the first of the two that print 0.5
    assert (picked["pass@1(vote)"], picked["pass@n"], picked["problems_without_examples"]) == (1.0, 1.0, 0)


def test_cli_reports_vote_next_to_plain_pass_at_1(tmp_path, capsys, problems):
    path = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "HumanEval/2", "completion": c} for c in TRUNCATE])
    subset = write_jsonl(tmp_path / "p.jsonl", [problems["HumanEval/2"]])
    summary = run(["--samples", str(path), "--problems", str(subset), "--select", "vote", "--k", "1,3",
                   "--workers", "2"])
    assert summary["scores"]["pass@1"] == pytest.approx(2 / 3)
    assert summary["vote"]["pass@1(vote)"] == 1.0
    assert "pass@1 vote  1.0000" in capsys.readouterr().out


def test_vote_is_python_only_for_now():
    with pytest.raises(ConfigError, match="supports --language python only"):
        parse_args(["--samples", "a", "--select", "vote", "--language", "js"])
