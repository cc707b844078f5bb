"""Infrastructure failures are not wrong answers: the ``error`` outcome, its causes, and when a run must stop.

A sample whose program was never judged (the sandbox could not be set up, a tool could not
start, the supervisor ended without a verdict: ``ExecResult.error``, results ``error: <cause>``)
says nothing about the model. It is left out of pass@k (``passk.counts_per_task``) and counted
by cause in the report. Past ``max_error_rate`` of a run's samples the scores would describe the
machine rather than the model, so the run stops with the causes (``ErrorBudget``). Before any
sample runs, each requested language runs one known-good solution in the sandbox
(``reference_failure``): a broken sandbox or toolchain stops the run before it scores anything.
"""

from __future__ import annotations

import math
from collections import Counter

from llmfoundry_lite.sandbox import ERROR_PREFIX

REFERENCE_TASK = "HumanEval/53"
"""The problem whose known-good solution proves a language works (``add``: every language spells it)."""


class InfrastructureFailure(RuntimeError):
    """The harness cannot give a trustworthy score; the message names the causes."""


def is_error(result: dict) -> bool:
    """Whether a per-sample result record is an infrastructure error (no verdict on the program)."""
    return result.get("result", "").startswith(ERROR_PREFIX)


def error_cause(result: str) -> str:
    """``error: sandbox setup: bwrap did not start: ...`` → ``sandbox setup`` (the cause without its detail)."""
    return result[len(ERROR_PREFIX) :].split(": ", 1)[0]


def error_causes(results: list[dict]) -> dict[str, int]:
    """Infrastructure errors by cause, most frequent first."""
    return dict(Counter(error_cause(r["result"]) for r in results if is_error(r)).most_common())


class ErrorBudget:
    """Counts errors as results arrive; raises ``InfrastructureFailure`` once more than
    ``max_rate`` of ``total`` samples are errors (from then on the final rate cannot be lower)."""

    def __init__(self, total: int, max_rate: float) -> None:
        self.total, self.max_rate = total, max_rate
        self.allowed = math.floor(max_rate * total + 1e-9)
        self.errors: list[dict] = []

    def add(self, result: dict) -> None:
        if not is_error(result):
            return
        self.errors.append(result)
        if len(self.errors) > self.allowed:
            raise InfrastructureFailure(self.message())

    def message(self) -> str:
        causes = ", ".join(f"{cause} ×{n}" for cause, n in error_causes(self.errors).items())
        first = self.errors[0]
        return (f"stopped: {len(self.errors)} of {self.total} samples could not be judged (more than "
                f"max_error_rate={self.max_rate:g}); causes: {causes}. First: {first['task_id']}: "
                f"{first['result'][:600]}")  # fmt: skip


def reference_failure(language: str, outcome: dict) -> str | None:
    """None when the reference solution passed; else the message saying the language cannot be scored."""
    if outcome["passed"]:
        return None
    return (f"{language}: the known-good solution of {outcome['task_id']} did not pass in this sandbox: "
            f"{outcome['result'][:600]}; no score of this language could be trusted, so nothing was scored")
