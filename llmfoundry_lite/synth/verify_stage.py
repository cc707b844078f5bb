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
from pathlib import Path
from typing import TYPE_CHECKING

from llmfoundry_lite.sandbox import ExecResult, Sandbox
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.mining import DISCARD_REASONS
from llmfoundry_lite.synth.verify import UNTESTED_REASONS, build_program
from llmfoundry_lite.synth.verify_cache import run_cached

if TYPE_CHECKING:
    from llmfoundry_lite.synth.pairs import Pair

VERIFY_REASONS = {
    "failed_tests": "the test program failed in the sandbox (assert, doctest mismatch, exception, crash)",
    "tests_timed_out": "the test program ran past sandbox.timeout",
    "untested": "no test could run (see untested_by_reason) and keep_untested is false",
}
"""Drop reasons of the verification stage."""
MAX_FAILURES_LISTED = 20


def verify_cache_dir(cfg: SynthConfig) -> Path:
    """Where finished programs' results are kept for the next attempt (``verify_cache.py``)."""
    return Path(cfg.output) / "work" / "verify"


class VerifyTally:
    """The counts behind ``stats.json``'s ``verify`` section, built pair by pair and mergeable, so the local
    engine (one tally) and Spark (one per partition, merged) give the same section."""

    def __init__(self) -> None:
        self.pairs = self.with_tests = self.tests = self.executed = self.passed = self.verified = self.kept = 0
        self.reused = 0  # programs whose result came from an earlier attempt (verify_cache.py)
        self.kinds: Counter = Counter()
        self.per_pair: Counter = Counter()
        self.discarded: Counter = Counter()
        self.untested: Counter = Counter()
        self.dropped: Counter = Counter({r: 0 for r in VERIFY_REASONS})
        self.wall_sum = self.wall_max = 0.0
        self.failures: list[tuple[int, dict]] = []  # (ordinal, failure): the first MAX_FAILURES_LISTED in input order

    def add(self, ordinal: int, pair: Pair, result: ExecResult | None, keep_untested: bool) -> Pair | None:
        """Count one pair given to verification with its program's result (None: not run); the pair kept, or None."""
        self.pairs += 1
        self.with_tests += bool(pair.tests)
        self.tests += len(pair.tests)
        self.kinds.update(pair.test_kinds)
        self.per_pair[len(pair.tests)] += 1
        self.discarded.update(pair.discarded_tests)
        self.untested[pair.untestable] += 1
        kept: Pair | None = None
        if result is None:
            if keep_untested:
                kept = pair
            else:
                self.dropped["untested"] += 1
        else:
            self.executed += 1
            self.passed += result.passed
            self.wall_sum += result.wall_s
            self.wall_max = max(self.wall_max, result.wall_s)
            if result.passed:
                kept = replace(pair, origin="verified")
            else:
                self.dropped["tests_timed_out" if result.result == "timed out" else "failed_tests"] += 1
                if len(self.failures) < MAX_FAILURES_LISTED:
                    self.failures.append((ordinal, {"source_id": pair.source_id, "result": result.result}))
        if kept is not None:
            self.kept += 1
            self.verified += kept.origin == "verified"
        return kept

    def merge(self, other: VerifyTally) -> VerifyTally:
        for name in ("pairs", "with_tests", "tests", "executed", "passed", "verified", "kept", "reused", "wall_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("kinds", "per_pair", "discarded", "untested", "dropped"):
            getattr(self, name).update(getattr(other, name))
        self.wall_max = max(self.wall_max, other.wall_max)
        self.failures = sorted(self.failures + other.failures, key=lambda f: f[0])[:MAX_FAILURES_LISTED]
        return self

    def section(self, sandbox: Sandbox, cfg: SynthConfig) -> dict:
        """``stats.json``'s ``verify`` section: what was mined, what could run, how it went."""
        return {
            "sandbox": sandbox.describe(), "workers": cfg.workers, "keep_untested": cfg.keep_untested,
            "pairs": self.pairs, "pairs_with_tests": self.with_tests, "tests": self.tests,
            "tests_by_kind": dict(sorted(self.kinds.items())),
            "tests_per_pair": {
                "mean_of_pairs_with_tests": round(self.tests / max(self.with_tests, 1), 3),
                "histogram": {str(n): self.per_pair[n] for n in sorted(self.per_pair)},
            },
            "discarded_tests_by_reason": {k: self.discarded[k] for k in DISCARD_REASONS},
            "untested_by_reason": {k: self.untested[k] for k in UNTESTED_REASONS},
            "executed": self.executed, "passed": self.passed, "reused": self.reused,
            "program_wall_s": {"mean": round(self.wall_sum / max(self.executed, 1), 3), "max": round(self.wall_max, 3)},
            "verified": self.verified, "share_verified": round(self.verified / max(self.kept, 1), 4),
            "failures": [f for _, f in self.failures],
        }


def verify_pairs(pairs: Sequence[Pair], cfg: SynthConfig, sandbox: Sandbox) -> tuple[list[Pair], Counter, dict]:
    """Pairs kept (verified ones marked), drops per ``VERIFY_REASONS``, and the ``verify`` stats section."""
    runnable = [i for i, p in enumerate(pairs) if p.untestable is None]
    results, reused = run_cached([build_program(pairs[i].program, pairs[i].tests) for i in runnable], sandbox,
                                 cfg.workers, verify_cache_dir(cfg))
    outcome = dict(zip(runnable, results, strict=True))
    tally = VerifyTally()
    tally.reused = reused
    kept = [k for i, pair in enumerate(pairs) if (k := tally.add(i, pair, outcome.get(i), cfg.keep_untested))]
    return kept, tally.dropped, tally.section(sandbox, cfg)
