"""Single-line infilling tasks: construction, PSM prompt ids, exact match and execution."""

from __future__ import annotations

from llmfoundry_lite.eval.execution import execute_samples
from llmfoundry_lite.eval.infill import (
    build_infill_tasks,
    filled_completion,
    first_line,
    normalize,
    psm_ids,
    score_infill,
)
from llmfoundry_lite.tokenizer.special import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX


def test_one_task_per_non_blank_line(problems):
    p0 = {"HumanEval/0": problems["HumanEval/0"]}
    tasks = build_infill_tasks(p0)
    lines = problems["HumanEval/0"]["canonical_solution"].splitlines(keepends=True)
    assert len(tasks) == sum(1 for line in lines if line.strip()) == 7
    t = tasks[2]
    assert t.task_id == "HumanEval/0/L2" and t.middle == lines[2]
    assert t.prefix + t.middle + t.suffix == problems["HumanEval/0"]["prompt"] + problems["HumanEval/0"]["canonical_solution"]
    assert filled_completion(t, t.middle) == problems["HumanEval/0"]["canonical_solution"]


def test_psm_prompt_uses_sentinel_ids(problems, tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    task = build_infill_tasks({"HumanEval/0": problems["HumanEval/0"]})[0]
    ids = psm_ids(tok, task)
    sentinels = [tok.token_to_id(s) for s in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)]
    assert ids[0] == sentinels[0] and ids[-1] == sentinels[2] and ids.count(sentinels[1]) == 1
    cut = ids.index(sentinels[1])
    assert tok.decode(ids[1:cut]) == task.prefix and tok.decode(ids[cut + 1 : -1]) == task.suffix


def test_exact_match_ignores_whitespace_only():
    assert normalize("  return  a+b \n") == normalize("return a+b")
    assert normalize("return a + b") != normalize("return a+b")
    assert first_line("x = 1\ny = 2\n") == "x = 1\n"


def test_scoring_right_and_wrong_lines(sandbox, problems):
    sub = {k: problems[k] for k in ("HumanEval/0", "HumanEval/2")}
    tasks = build_infill_tasks(sub)
    # i % 3: 0 = the hidden line, 1 = the same code re-spaced (an exact match that may not run), 2 = wrong
    variants = [lambda t: t.middle, lambda t: " " + " ".join(t.middle.split()) + "  ", lambda t: "    pass\n"]
    predictions = [variants[i % 3](t) for i, t in enumerate(tasks)]

    def run(samples: list[dict]) -> list[dict]:
        return execute_samples(sub, samples, sandbox, workers=2)

    records, summary = score_infill(tasks, predictions, run)
    assert [r["exact_match"] for r in records] == [i % 3 != 2 for i in range(len(tasks))]
    assert summary["exact_match"] == sum(i % 3 != 2 for i in range(len(tasks))) / len(tasks)
    assert all(r["passed"] for i, r in enumerate(records) if i % 3 == 0)  # the hidden line restores the solution
    assert not any(r["passed"] for i, r in enumerate(records) if i % 3 == 1)  # indentation lost: it cannot run
