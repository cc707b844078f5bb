"""``python eval/humaneval.py --samples``: results and summary files, the table, config errors (``cli/humaneval.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmfoundry_lite.cli.humaneval import parse_args, run
from llmfoundry_lite.config import ConfigError
from llmfoundry_lite.corpus.benchmarks import read_jsonl, write_jsonl
from llmfoundry_lite.eval.problems import load_problems

REPO = Path(__file__).parents[2]


def test_flags_land_in_the_typed_config():
    cfg = parse_args(["--samples", "s.jsonl", "--k", "1,10", "--workers", "3", "--timeout", "2.5",
                      "--sandbox", "none", "sandbox.memory_mb=512"])  # fmt: skip
    assert (cfg.samples, cfg.k, cfg.workers) == ("s.jsonl", [1, 10], 3)
    assert (cfg.sandbox.kind, cfg.sandbox.timeout, cfg.sandbox.memory_mb) == ("none", 2.5, 512)


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "exactly one of --model PATH or --samples"),
     (["--samples", "a", "--model", "b"], "exactly one of"),
     (["--samples", "a", "--k", "0"], "k must be a non-empty list of positive integers"),
     (["--samples", "a", "sandbox.memory=1"], "unknown config key 'sandbox.memory'"),
     (["--task", "humaneval-infill", "--samples", "a"], "humaneval-infill needs --model"),
     (["--samples", "a", "sandbox.kind=docker"], "unknown sandbox.kind 'docker'; choose from bwrap, none"),
     (["--model", "m", "--top-p", "0"], r"generation.top_p must be in \(0, 1\]")],
)  # fmt: skip
def test_bad_options_fail_naming_the_key(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_args(argv)


def test_scoring_a_samples_file_writes_results_and_summary(tmp_path, problems, capsys):
    first3 = list(problems.values())[:3]
    samples = [{"task_id": p["task_id"], "completion": c} for p in first3 for c in (p["canonical_solution"], "    return None\n")]
    path = write_jsonl(tmp_path / "model.jsonl", samples)
    summary = run(["--samples", str(path), "--limit", "3", "--k", "1,2,5", "--workers", "2", "--timeout", "2"])
    results = read_jsonl(f"{path}_results.jsonl")
    assert [r["passed"] for r in results] == [True, False] * 3
    assert results[1] == {"task_id": "HumanEval/0", "completion": "    return None\n", "passed": False, "result": "failed: "}
    on_disk = json.loads(Path(f"{path}_summary.json").read_text())
    assert on_disk == summary
    assert summary["scores"] == {"pass@1": 0.5, "pass@2": 1.0}
    assert (summary["n_problems"], summary["n_samples"], summary["outcomes"]) == (3, 6, {"passed": 3, "failed": 3})
    out = capsys.readouterr().out
    assert "pass@1       0.5000" in out and "pass@5          n/a" in out


def test_command_line_script_fails_cleanly_without_bwrap(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": ""}])
    env = {"PATH": str(tmp_path)}  # no bwrap on this PATH
    proc = subprocess.run([sys.executable, "eval/humaneval.py", "--samples", str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert "bubblewrap (bwrap) is not installed" in proc.stderr and "--sandbox none" in proc.stderr
    assert not Path(f"{path}_results.jsonl").exists()


def test_any_problems_file_of_the_same_format(tmp_path):
    problems = write_jsonl(tmp_path / "mine.jsonl", [
        {"task_id": "Mine/0", "prompt": "def double(x):\n", "entry_point": "double",
         "test": "def check(f):\n    assert f(2) == 4\n"},
    ])  # fmt: skip
    samples = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "Mine/0", "completion": c} for c in ("    return 2 * x\n", "    return x + 1\n")])
    summary = run(["--samples", str(samples), "--problems", str(problems), "--k", "1", "--workers", "1"])
    assert summary["scores"] == {"pass@1": 0.5}
    assert [r["result"] for r in read_jsonl(f"{samples}_results.jsonl")] == ["passed", "failed: "]


def test_unknown_language_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown language 'rust'; choose from python, js, cpp, java, sh"):
        parse_args(["--samples", "a", "language=rust"])


def test_write_problems_alone_writes_the_translation_and_prints_coverage(tmp_path, capsys):
    out = tmp_path / "js.jsonl"
    summary = run(["--language", "js", "--write-problems", str(out)])
    records = read_jsonl(out)
    assert summary["translated"] == len(records) == 156
    assert set(records[0]) == {"task_id", "language", "prompt", "tests", "stop_tokens"}
    assert records[0]["task_id"] == "HumanEval/0" and records[0]["language"] == "js"
    assert records[0]["stop_tokens"] == ["\nfunction ", "\n/*", "\n//", "\nconsole.log"]
    printed = capsys.readouterr().out
    assert "js: 156/164 problems translated" in printed
    assert "untranslated HumanEval/22: untranslatable type Any" in printed


def test_write_problems_for_python_keeps_the_originals(tmp_path, problems):
    out = tmp_path / "py.jsonl"
    run(["--write-problems", str(out), "--limit", "2"])
    records = read_jsonl(out)
    assert [r["task_id"] for r in records] == ["HumanEval/0", "HumanEval/1"]
    assert records[0]["prompt"] == problems["HumanEval/0"]["prompt"]
    assert records[0]["tests"].endswith("check(has_close_elements)\n")


def test_language_samples_are_scored_and_untranslated_ones_counted(tmp_path, capsys):
    right = (REPO / "tests/eval/references/js/HumanEval_53.js").read_text()
    samples = write_jsonl(tmp_path / "js.jsonl", [
        {"task_id": "HumanEval/53", "completion": right},
        {"task_id": "HumanEval/53", "completion": "  return x - y;\n}\n"},
        {"task_id": "HumanEval/22", "completion": "  return [];\n}\n"},  # untranslated: skipped, counted
    ])  # fmt: skip
    he = load_problems(None, None)
    subset = write_jsonl(tmp_path / "p.jsonl", [he["HumanEval/53"], he["HumanEval/22"]])  # the subset scored, named
    summary = run(["--language", "js", "--samples", str(samples), "--problems", str(subset), "--k", "1,2",
                   "--workers", "2"])
    assert summary["scores"] == {"pass@1": 0.5, "pass@2": 1.0}
    assert summary["language"] == "js" and summary["coverage"] == "1/2"
    assert summary["skipped_samples_of_untranslated_problems"] == 1
    assert [r["result"] for r in read_jsonl(f"{samples}_results.jsonl")] == ["passed", "failed: exit status 1"]
    assert "1 samples of untranslated problems skipped: HumanEval/22" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("language", "generated", "completion"),
    [("cpp", "    return 1;\n}\nint main() {}", "    return 1;"),
     ("java", "        return 1;\n    }\n    public static void x() {}", "        return 1;"),
     ("js", "  return 1;\n}\n\nfunction other() {}", "  return 1;\n}\n"),
     ("sh", "    echo 1\n}\n\nother() {", "    echo 1")],
)  # fmt: skip
def test_generated_text_is_cut_before_the_stop_as_multipl_e_does(language, generated, completion):
    """MultiPL-E: the completion ends before the stop token; the tests start with the closing brace
    (JS's stops come after the function, so its completion closes it)."""
    from llmfoundry_lite.eval.languages import LANGUAGES

    assert LANGUAGES[language].finish_completion(generated) == completion
