"""Peak FLOP/s for MFU: Composer's GPU table, or the measured matmul rate on CPU."""

from __future__ import annotations

import time

import torch


def measure_matmul_flops(n: int = 1024, reps: int = 30, dtype: torch.dtype = torch.float32,
                         device: str = "cpu") -> float:
    """Best-of-``reps`` FLOP/s of an (n×n)·(n×n) matmul: the "peak" against which CPU MFU is stated."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(reps):
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best
