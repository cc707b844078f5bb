"""A score covers what it says (issue 30, item 7): a samples file that misses problems of the set in use is
refused unless the user names the subset, and a translated score states how many of the original's test
assertions each problem kept."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from llmfoundry_lite.cli.humaneval import run
from llmfoundry_lite.corpus.benchmarks import write_jsonl
from llmfoundry_lite.eval.humaneval import MissingProblems
from llmfoundry_lite.eval.languages import translate_all
from llmfoundry_lite.eval.problems import load_problems

REPO = Path(__file__).parents[2]


def _statements_that_test(test_source: str) -> int:
    """Statements of ``check`` other than a constant ``assert True``-style no-op."""
    check = next(n for n in ast.parse(test_source).body if isinstance(n, ast.FunctionDef) and n.name == "check")
    return sum(1 for s in check.body if not (isinstance(s, ast.Assert) and isinstance(s.test, ast.Constant)))


def _canonical(problems: dict, tasks: list[str]) -> list[dict]:
    return [{"task_id": t, "completion": problems[t]["canonical_solution"]} for t in tasks]


def test_a_samples_file_missing_problems_is_refused_unless_the_subset_is_named(tmp_path):
    problems = load_problems(None, None)
    path = write_jsonl(tmp_path / "s.jsonl", _canonical(problems, ["HumanEval/0", "HumanEval/1", "HumanEval/2"]))
    with pytest.raises(MissingProblems, match=r"no samples for 161 of the 164 problems \(HumanEval/3, HumanEval/4, "
                                         r".*--limit N .*--problems FILE"):
        run(["--samples", str(path), "--workers", "1"])
    with pytest.raises(MissingProblems, match=r"no samples for 1 of the 4 problems of the subset named"):
        run(["--samples", str(path), "--limit", "4", "--workers", "1"])
    summary = run(["--samples", str(path), "--limit", "3", "--k", "1", "--workers", "1"])
    assert (summary["n_problems"], summary["scores"]) == (3, {"pass@1": 1.0})
    subset = write_jsonl(tmp_path / "p.jsonl", [problems[t] for t in ("HumanEval/1", "HumanEval/2")])
    path = write_jsonl(tmp_path / "s12.jsonl", _canonical(problems, ["HumanEval/1", "HumanEval/2"]))
    summary = run(["--samples", str(path), "--problems", str(subset), "--k", "1", "--workers", "1"])
    assert (summary["n_problems"], summary["n_samples"]) == (2, 2)


def test_the_command_exits_2_naming_the_missing_problems(tmp_path):
    problems = load_problems(None, None)
    path = write_jsonl(tmp_path / "s.jsonl", _canonical(problems, ["HumanEval/0"]))
    proc = subprocess.run([sys.executable, "eval/humaneval.py", "--samples", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "no samples for 163 of the 164 problems" in proc.stderr.strip().splitlines()[-1]
    assert not Path(f"{path}_results.jsonl").exists()


def test_each_translated_problem_accounts_for_every_test_statement_of_the_original():
    problems = load_problems(None, None)
    coverage = translate_all(problems, "cpp")
    for task, tr in coverage.translated.items():
        assert tr.kept >= 1, task
        assert tr.kept + len(tr.dropped) == _statements_that_test(problems[task]["test"]), task
    assert any(tr.dropped for tr in coverage.translated.values())  # some problems do lose statements


def test_the_summary_and_the_table_state_the_tests_each_problem_kept(tmp_path, capsys):
    problems = load_problems(None, None)
    subset = write_jsonl(tmp_path / "p.jsonl", [problems[t] for t in ("HumanEval/53", "HumanEval/20")])
    right = (REPO / "tests/eval/references/js/HumanEval_53.js").read_text()
    samples = write_jsonl(tmp_path / "js.jsonl", [{"task_id": "HumanEval/53", "completion": right},
                                                  {"task_id": "HumanEval/20", "completion": "  return [];\n}\n"}])
    summary = run(["--language", "js", "--samples", str(samples), "--problems", str(subset), "--k", "1",
                   "--workers", "1"])
    coverage = translate_all({t: problems[t] for t in ("HumanEval/53", "HumanEval/20")}, "js")
    assert summary["tests"] == {t: {"kept": tr.kept, "dropped": len(tr.dropped)}
                                for t, tr in coverage.translated.items()}
    assert summary["tests"]["HumanEval/53"]["kept"] >= 5 and summary["n_problems"] == 2
    assert "tests kept per translated problem: " in capsys.readouterr().out
