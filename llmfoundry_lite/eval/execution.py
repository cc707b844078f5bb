"""Execute many samples in parallel, one fresh sandboxed process each (Python or a translated language)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from llmfoundry_lite.eval.languages.base import Language, Translated
from llmfoundry_lite.eval.problems import check_program
from llmfoundry_lite.sandbox import ExecResult, Sandbox


def execute_samples(
    problems: dict[str, dict],
    samples: list[dict],
    sandbox: Sandbox,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Per-sample results in input order: ``task_id``, ``completion``, ``passed``, ``result``."""
    return _execute(samples, lambda s: sandbox.run(check_program(problems[s["task_id"]], s["completion"])),
                    workers, progress)  # fmt: skip


def execute_translated(
    translated: dict[str, Translated],
    samples: list[dict],
    sandbox: Sandbox,
    language: Language,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """``execute_samples`` for a translated language: prompt + completion + tests, compiled and
    run as ``language.job`` says (a compile error is the result ``failed: compile error``)."""

    def run(sample: dict) -> ExecResult:
        program = translated[sample["task_id"]].program(sample["completion"])
        return sandbox.run_job(language.job(program, sandbox.cfg))

    return _execute(samples, run, workers, progress)


def _execute(
    samples: list[dict], run: Callable[[dict], ExecResult], workers: int, progress: Callable[[int, int], None] | None
) -> list[dict]:
    """Threads only wait on child processes, so ``workers`` threads keep ``workers`` sandboxes busy."""

    def one(sample: dict) -> dict:
        outcome = run(sample)
        return {"task_id": sample["task_id"], "completion": sample["completion"],
                "passed": outcome.passed, "result": outcome.result}  # fmt: skip

    results = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, result in enumerate(pool.map(one, samples), 1):
            results.append(result)
            if progress is not None:
                progress(i, len(samples))
    return results


def stderr_progress(verb: str = "executed", every_s: float = 5.0) -> Callable[[int, int], None]:
    """A progress callback printing ``<verb> i/n`` to stderr at most every ``every_s`` seconds."""
    last = [time.monotonic()]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= every_s:
            print(f"{verb} {done}/{total}", file=sys.stderr, flush=True)
            last[0] = now

    return report
