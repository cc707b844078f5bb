"""Execute many samples in parallel, one fresh sandboxed process each (Python or a translated language).

With ``max_error_rate`` a run stops (``InfrastructureFailure``) once more of its samples than that
could not be judged (``infra.py``); ``require_working`` runs a language's known-good solution first.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

from llmfoundry_lite.eval.infra import REFERENCE_TASK, ErrorBudget, InfrastructureFailure, reference_failure
from llmfoundry_lite.eval.languages import get_language
from llmfoundry_lite.eval.languages.base import Language, Translated
from llmfoundry_lite.eval.languages.pyparse import parse_problem
from llmfoundry_lite.eval.problems import load_problems, scoring_job
from llmfoundry_lite.sandbox import ExecResult, Sandbox


def execute_samples(
    problems: dict[str, dict],
    samples: list[dict],
    sandbox: Sandbox,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
    max_error_rate: float | None = None,
) -> list[dict]:
    """Per-sample results in input order: ``task_id``, ``completion``, ``passed``, ``result``. The
    tests run outside the sample's process (``problems.scoring_job``): no sample can forge a pass."""
    return _execute(samples, lambda s: sandbox.run_job(scoring_job(problems[s["task_id"]], s["completion"], sandbox.cfg)),
                    workers, progress, max_error_rate)  # fmt: skip


def execute_translated(
    translated: dict[str, Translated],
    samples: list[dict],
    sandbox: Sandbox,
    language: Language,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
    max_error_rate: float | None = None,
) -> list[dict]:
    """``execute_samples`` for a translated language: prompt + completion + tests, compiled and
    run as ``language.job`` says (a compile error is the result ``failed: compile error``)."""

    def run(sample: dict) -> ExecResult:
        program = translated[sample["task_id"]].program(sample["completion"])
        return sandbox.run_job(language.job(program, sandbox.cfg))

    return _execute(samples, run, workers, progress, max_error_rate)


def _execute(
    samples: list[dict], run: Callable[[dict], ExecResult], workers: int, progress: Callable[[int, int], None] | None,
    max_error_rate: float | None = None,
) -> list[dict]:
    """Threads only wait on child processes, so ``workers`` threads keep ``workers`` sandboxes busy.
    Past the error budget, samples not started yet are cancelled and ``InfrastructureFailure`` raised."""

    def one(sample: dict) -> dict:
        outcome = run(sample)
        return {"task_id": sample["task_id"], "completion": sample["completion"],
                "passed": outcome.passed, "result": outcome.result}  # fmt: skip

    budget = ErrorBudget(len(samples), max_error_rate) if max_error_rate is not None else None
    results: list[dict | None] = [None] * len(samples)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(one, sample): i for i, sample in enumerate(samples)}
        try:
            for done, future in enumerate(as_completed(futures), 1):
                results[futures[future]] = result = future.result()
                if budget is not None:
                    budget.add(result)
                if progress is not None:
                    progress(done, len(samples))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results  # type: ignore[return-value]  # every slot is filled once all futures are done


def require_working(language: str, sandbox: Sandbox) -> None:
    """Run ``language``'s known-good solution of ``REFERENCE_TASK`` (of the default problems: this checks the
    machine, whatever set is scored) the way samples run; ``InfrastructureFailure`` unless it passes."""
    problems = load_problems()
    if language == "python":
        sample = {"task_id": REFERENCE_TASK, "completion": problems[REFERENCE_TASK]["canonical_solution"]}
        outcome = execute_samples(problems, [sample], sandbox, 1)[0]
    else:
        lang = get_language(language)
        task_id, completion = lang.reference
        translated = {task_id: lang.translate(parse_problem(problems[task_id]))}
        outcome = execute_translated(translated, [{"task_id": task_id, "completion": completion}], sandbox, lang, 1)[0]
    failure = reference_failure(language, outcome)
    if failure is not None:
        raise InfrastructureFailure(failure)


def stderr_progress(verb: str = "executed", every_s: float = 5.0) -> Callable[[int, int], None]:
    """A progress callback printing ``<verb> i/n`` to stderr at most every ``every_s`` seconds."""
    last = [time.monotonic()]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= every_s:
            print(f"{verb} {done}/{total}", file=sys.stderr, flush=True)
            last[0] = now

    return report
