"""The verification stage of ``run_synthesis``: run every testable pair's tests, keep or drop, count.

A pair whose tests can run (``verify.untestable`` is None) is executed once, all its tests in one
program; it is kept as ``verified`` if the program returns normally, else dropped as
``tests_timed_out`` (past ``sandbox.timeout``) or ``failed_tests`` (anything else: a failed assert
or doctest example, an exception, a crash). A pair whose tests cannot run is kept as ``untested``
when ``keep_untested`` holds, else dropped as ``untested``. Results come back in input order, so
the kept pairs do not depend on ``workers``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from llmfoundry_lite.eval.sandbox import ExecResult, Sandbox
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.mining import DISCARD_REASONS
from llmfoundry_lite.synth.verify import UNTESTED_REASONS, build_program, run_programs

if TYPE_CHECKING:
    from llmfoundry_lite.synth.pairs import Pair

VERIFY_REASONS = {
    "failed_tests": "the test program failed in the sandbox (assert, doctest mismatch, exception, crash)",
    "tests_timed_out": "the test program ran past sandbox.timeout",
    "untested": "no test could run (see untested_by_reason) and keep_untested is false",
}
"""Drop reasons of the verification stage."""
MAX_FAILURES_LISTED = 20


def _count(values: Sequence[str | None], keys: Sequence[str]) -> dict[str, int]:
    counts = Counter(values)
    return {k: counts[k] for k in keys}


def verify_stats(pairs: Sequence[Pair], kept: Sequence[Pair], results: Sequence[ExecResult], sandbox: Sandbox,
                 cfg: SynthConfig) -> dict:
    """``stats.json``'s ``verify`` section: what was mined, what could run, how it went."""
    with_tests = [p for p in pairs if p.tests]
    per_pair = Counter(len(p.tests) for p in pairs)
    verified = sum(p.origin == "verified" for p in kept)
    walls = [r.wall_s for r in results]
    return {
        "sandbox": sandbox.describe(), "workers": cfg.workers, "keep_untested": cfg.keep_untested,
        "pairs": len(pairs), "pairs_with_tests": len(with_tests),
        "tests": sum(len(p.tests) for p in pairs),
        "tests_by_kind": dict(sorted(Counter(k for p in pairs for k in p.test_kinds).items())),
        "tests_per_pair": {
            "mean_of_pairs_with_tests": round(sum(len(p.tests) for p in with_tests) / max(len(with_tests), 1), 3),
            "histogram": {str(n): per_pair[n] for n in sorted(per_pair)},
        },
        "discarded_tests_by_reason": _count([r for p in pairs for r in p.discarded_tests], list(DISCARD_REASONS)),
        "untested_by_reason": _count([p.untestable for p in pairs], list(UNTESTED_REASONS)),
        "executed": len(results), "passed": sum(r.passed for r in results),
        "program_wall_s": {"mean": round(sum(walls) / max(len(walls), 1), 3), "max": round(max(walls, default=0.0), 3)},
        "verified": verified, "share_verified": round(verified / max(len(kept), 1), 4),
    }


def verify_pairs(pairs: Sequence[Pair], cfg: SynthConfig, sandbox: Sandbox) -> tuple[list[Pair], Counter, dict]:
    """Pairs kept (verified ones marked), drops per ``VERIFY_REASONS``, and the ``verify`` stats section."""
    runnable = [i for i, p in enumerate(pairs) if p.untestable is None]
    results = run_programs([build_program(pairs[i].program, pairs[i].tests) for i in runnable], sandbox, cfg.workers)
    outcome = dict(zip(runnable, results, strict=True))
    kept: list[Pair] = []
    dropped: Counter = Counter({r: 0 for r in VERIFY_REASONS})
    failures: list[dict] = []
    for i, pair in enumerate(pairs):
        result = outcome.get(i)
        if result is None:
            if cfg.keep_untested:
                kept.append(pair)
            else:
                dropped["untested"] += 1
        elif result.passed:
            kept.append(replace(pair, origin="verified"))
        else:
            dropped["tests_timed_out" if result.result == "timed out" else "failed_tests"] += 1
            if len(failures) < MAX_FAILURES_LISTED:
                failures.append({"source_id": pair.source_id, "result": result.result})
    stats = verify_stats(pairs, kept, results, sandbox, cfg)
    stats["failures"] = failures
    return kept, dropped, stats
