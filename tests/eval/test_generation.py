"""Sampling glue: stop sequences, seeded batches, and ``--model`` end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmfoundry_lite.cli.humaneval import run
from llmfoundry_lite.corpus.benchmarks import read_jsonl
from llmfoundry_lite.eval.config import GenerationConfig
from llmfoundry_lite.eval.generation import cut_at_stop, sample_humaneval, stop_when_any


def test_cut_at_the_earliest_stop_sequence():
    stops = GenerationConfig().stop
    assert cut_at_stop("    return x\n\ndef other():\n    pass\nprint(1)", stops) == "    return x\n"
    assert cut_at_stop("    if a:\n        return 1\n    return 2\nif __name__", stops) == "    if a:\n        return 1\n    return 2"
    assert cut_at_stop("    return 3", stops) == "    return 3"


def test_stop_predicate_decodes_new_tokens(tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    stop = stop_when_any(tok, ["\ndef"])
    assert stop(tok.encode("    return 1\ndef g").ids) is True
    assert stop(tok.encode("    return 1\n").ids) is False


def test_samples_are_seeded_and_shaped(tiny_model_and_tokenizer, problems):
    model, tok = tiny_model_and_tokenizer
    two = dict(list(problems.items())[:2])
    gen = GenerationConfig(n_samples=3, batch_size=2, max_new_tokens=12, temperature=0.8, seed=7)
    a = sample_humaneval(model, tok, two, gen)
    b = sample_humaneval(model, tok, two, gen)
    assert [s["task_id"] for s in a] == ["HumanEval/0"] * 3 + ["HumanEval/1"] * 3
    assert a == b  # same seed, same samples
    assert all(not any(stop in s["completion"] for stop in gen.stop) for s in a)
    c = sample_humaneval(model, tok, two, GenerationConfig(n_samples=3, batch_size=2, max_new_tokens=12, temperature=0.8, seed=8))
    assert c != a


def test_model_mode_end_to_end(tiny_checkpoint, tmp_path):
    out = tmp_path / "tiny.jsonl"
    summary = run(["--model", str(tiny_checkpoint), "--limit", "2", "--n-samples", "2", "--batch-size", "2",
                    "--max-new-tokens", "8", "--k", "1,2", "--workers", "2", "--output", str(out)])  # fmt: skip
    samples = read_jsonl(out)
    assert [s["task_id"] for s in samples] == ["HumanEval/0"] * 2 + ["HumanEval/1"] * 2
    results = read_jsonl(f"{out}_results.jsonl")
    assert len(results) == 4 and {r["task_id"] for r in results} == {"HumanEval/0", "HumanEval/1"}
    # A random model writes noise: every sample fails, and the scores say so.
    assert summary["scores"] == {"pass@1": 0.0, "pass@2": 0.0}
    assert json.loads(Path(f"{out}_summary.json").read_text())["n_samples"] == 4


def test_infill_task_end_to_end(tiny_checkpoint, tmp_path):
    out = tmp_path / "infill.jsonl"
    summary = run(["--task", "humaneval-infill", "--model", str(tiny_checkpoint), "--limit", "1",
                    "--temperature", "0", "--max-new-tokens", "6", "--workers", "2", "--output", str(out)])  # fmt: skip
    records = read_jsonl(out)
    assert summary["tasks"] == len(records) == 7  # HumanEval/0's canonical solution has 7 non-blank lines
    assert all(r["prediction"].count("\n") <= 1 for r in records)
    assert summary["exact_match"] == sum(r["exact_match"] for r in records) / 7


def test_model_mode_in_a_translated_language(tiny_checkpoint, tmp_path):
    from llmfoundry_lite.eval.languages import LANGUAGES

    if LANGUAGES["js"].missing_tools():
        pytest.skip("node is not installed")
    out = tmp_path / "tiny_js.jsonl"
    summary = run(["--language", "js", "--model", str(tiny_checkpoint), "--limit", "2", "--n-samples", "1",
                    "--max-new-tokens", "8", "--k", "1", "--workers", "2", "--output", str(out)])  # fmt: skip
    samples = read_jsonl(out)
    assert [s["task_id"] for s in samples] == ["HumanEval/0", "HumanEval/1"]
    assert all(s["completion"] == LANGUAGES["js"].finish_completion(s["completion"]) for s in samples)
    assert summary["language"] == "js" and summary["coverage"] == "2/2"
    assert summary["scores"] == {"pass@1": 0.0}  # noise from a random model
