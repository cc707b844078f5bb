"""The unbiased pass@k estimator of the Codex paper and the table that reports it."""

from __future__ import annotations

import math
from collections import defaultdict

from llmfoundry_lite.eval.infra import is_error


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k): the chance that k of n samples, c of them correct, include a pass.

    Computed as a product so that n in the hundreds stays exact enough in floating point.
    """
    if not 0 <= c <= n or k <= 0:
        raise ValueError(f"need 0 <= c <= n and k > 0, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def counts_per_task(results: list[dict]) -> dict[str, tuple[int, int]]:
    """task_id → (samples, passed) from per-sample results carrying ``passed``. Infrastructure errors
    (``error: ...`` results: the program was never judged) are not samples: they count neither way."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        if is_error(r):
            continue
        counts[r["task_id"]][0] += 1
        counts[r["task_id"]][1] += bool(r["passed"])
    return {task: (n, c) for task, (n, c) in counts.items()}


def pass_at_k(results: list[dict], ks: list[int]) -> dict[str, float]:
    """Mean pass@k over problems, for each k that every problem has enough samples for."""
    counts = counts_per_task(results)
    if not counts:
        return {}
    fewest = min(n for n, _ in counts.values())
    return {
        f"pass@{k}": sum(estimate_pass_at_k(n, c, k) for n, c in counts.values()) / len(counts)
        for k in sorted(set(ks))
        if k <= fewest
    }


def format_table(scores: dict[str, float], n_problems: int, n_samples: int, requested: list[int] | tuple[int, ...] = ()) -> str:
    """A small aligned table: one row per pass@k; requested k without enough samples say so."""
    lines = [f"{'metric':<10} {'value':>8}   ({n_problems} problems, {n_samples} samples)"]
    lines += [f"{name:<10} {value:>8.4f}" for name, value in scores.items()]
    lines += [f"{f'pass@{k}':<10} {'n/a':>8}   (needs >= {k} samples per problem)"
              for k in sorted(set(requested)) if f"pass@{k}" not in scores]  # fmt: skip
    return "\n".join(lines)
