"""Numerical-health monitor in the spirit of a tensor-collection hook: per-layer gradient
statistics, the fraction of gradient elements that are exactly zero (fp16 underflow), NaN/Inf
counts and the fp16 loss scale, with a warning when underflow is high or trending up."""

from __future__ import annotations

import logging
import math
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

import torch
from composer.core import Callback, State
from composer.loggers import Logger
from torch.distributed.tensor import DTensor, Shard

log = logging.getLogger(__name__)


# Name parts added by wrappers (ComposerModel, DDP, FSDP, activation checkpointing).
WRAPPER_PARTS = {"model", "module", "_fsdp_wrapped_module", "_checkpoint_wrapped_module"}


def layer_of(param_name: str) -> str:
    """Group parameters by block: ``module.model.blocks.3.attn.qkv_proj.weight`` → ``block3``;
    others by their first non-wrapper name part (``embed``, ``norm``, ``lm_head``)."""
    parts = [p for p in param_name.split(".") if p not in WRAPPER_PARTS]
    return f"block{parts[1]}" if parts[0] == "blocks" else parts[0]


_SUMS = ("sumsq", "zeros", "nan", "inf", "numel")


def _local(g: torch.Tensor) -> torch.Tensor:
    return g.to_local() if isinstance(g, DTensor) else g


def _shard_groups(grads: list[torch.Tensor]) -> list[Any]:
    """Process groups over which gradient *shards* differ (FSDP2 mesh dims with a Shard placement).

    Replicated dims (DDP, the replicate dim of HYBRID_SHARD) already hold identical values and
    are not reduced, so every element is counted exactly once.
    """
    dt = next((g for g in grads if isinstance(g, DTensor)), None)
    if dt is None:
        return []
    return [dt.device_mesh.get_group(i) for i, p in enumerate(dt.placements) if isinstance(p, Shard)]


def grad_stats(named_params: Iterable[tuple[str, torch.nn.Parameter]]) -> dict[str, dict[str, float]]:
    """Per-layer norm, min, max, absmax, zero_frac, nan, inf and element count of the gradients.

    Under FSDP each rank holds shards: local statistics are reduced over the shard groups (SUM /
    MIN / MAX), so every rank gets the statistics of the full gradients. Everything is gathered
    into three tensors first, so there is one device→host copy per reduction, not one per parameter.
    """
    layers: dict[str, list[torch.Tensor]] = defaultdict(list)
    for name, p in named_params:
        if p.grad is not None:
            layers[layer_of(name)].append(p.grad.detach())
    if not layers:
        return {}
    sums, mins, maxs = [], [], []
    for grads in layers.values():
        g = torch.cat([_local(x).float().reshape(-1) for x in grads])
        finite = torch.isfinite(g)
        clean = torch.where(finite, g, torch.zeros_like(g))
        sums.append(torch.stack([clean.square().sum(), (g == 0).sum().float(), torch.isnan(g).sum().float(),
                                 torch.isinf(g).sum().float(), torch.tensor(float(g.numel()), device=g.device)]))
        mins.append(torch.where(finite, g, torch.full_like(g, math.inf)).min() if g.numel() else g.new_tensor(math.inf))
        maxs.append(torch.where(finite, g, torch.full_like(g, -math.inf)).max() if g.numel() else g.new_tensor(-math.inf))
    sum_LS, min_L, max_L = torch.stack(sums).double(), torch.stack(mins).double(), torch.stack(maxs).double()
    for group in _shard_groups([g for grads in layers.values() for g in grads]):
        torch.distributed.all_reduce(sum_LS, op=torch.distributed.ReduceOp.SUM, group=group)
        torch.distributed.all_reduce(min_L, op=torch.distributed.ReduceOp.MIN, group=group)
        torch.distributed.all_reduce(max_L, op=torch.distributed.ReduceOp.MAX, group=group)
    out = {}
    for layer, row, lo, hi in zip(layers, sum_LS.tolist(), min_L.tolist(), max_L.tolist(), strict=True):
        a = dict(zip(_SUMS, row, strict=True))
        out[layer] = {"norm": math.sqrt(a["sumsq"]), "min": lo, "max": hi, "absmax": max(abs(lo), abs(hi)) if a["numel"] else 0.0,
                      "zero_frac": a["zeros"] / max(a["numel"], 1), "nan": int(a["nan"]), "inf": int(a["inf"]),
                      "numel": int(a["numel"])}
    return out


def global_norm(stats: dict[str, dict[str, float]]) -> float:
    """L2 norm of all gradients together (finite elements), from the per-layer norms."""
    return math.sqrt(sum(s["norm"] ** 2 for s in stats.values()))


def underflow_fraction(stats: dict[str, dict[str, float]]) -> float:
    """Zero fraction over all layers except the embedding (rows of unseen tokens are legitimately zero)."""
    rows = [s for layer, s in stats.items() if layer != "embed"]
    numel = sum(s["numel"] for s in rows)
    return sum(s["zero_frac"] * s["numel"] for s in rows) / max(numel, 1)


class NumericalHealthMonitor(Callback):
    """Every ``interval`` steps, after gradients are complete (and unscaled), before clipping and
    the optimizer step, log ``grad_health/<layer>/<stat>`` plus totals (``global_norm``: the
    pre-clip norm over all shards); warn on NaN/Inf, on an underflow fraction above
    ``underflow_warn``, or when it rose over ``trend_window`` readings. Every rank must call it
    (the shard statistics are reduced collectively)."""

    def __init__(self, interval: int = 50, underflow_warn: float = 0.05, trend_window: int = 5) -> None:
        self.interval = interval
        self.underflow_warn = underflow_warn
        self.recent: deque[float] = deque(maxlen=trend_window)
        self.warnings: list[str] = []

    def after_train_batch(self, state: State, logger: Logger) -> None:
        step = int(state.timestamp.batch) + 1  # this batch's step number (1-based)
        if step % self.interval and step != 1:
            return
        stats = grad_stats(state.model.named_parameters())
        metrics: dict[str, float] = {}
        for layer, s in stats.items():
            metrics.update({f"grad_health/{layer}/{k}": v for k, v in s.items() if k != "numel"})
        under = underflow_fraction(stats)
        nonfinite = sum(s["nan"] + s["inf"] for s in stats.values())
        metrics.update({"grad_health/underflow_frac": under, "grad_health/nonfinite": nonfinite,
                        "grad_health/global_norm": global_norm(stats)})
        if state.scaler is not None and state.scaler.is_enabled():
            metrics["grad_health/loss_scale"] = float(state.scaler.get_scale())
        logger.log_metrics(metrics)
        self.recent.append(under)
        self._warn(step, under, nonfinite, str(state.precision.value))

    def _warn(self, step: int, under: float, nonfinite: int, precision: str) -> None:
        fix = " Switch to precision=amp_bf16 (same range as fp32)." if precision == "amp_fp16" else ""
        msgs = []
        if nonfinite:
            msgs.append(f"step {step}: {nonfinite} NaN/Inf gradient elements.{fix}")
        if under > self.underflow_warn:
            msgs.append(f"step {step}: {under:.1%} of gradient elements are exactly zero (underflow).{fix}")
        rising = len(self.recent) == self.recent.maxlen and all(b > a for a, b in zip(list(self.recent)[:-1], list(self.recent)[1:], strict=True))
        if rising and under > 0.01:
            msgs.append(f"step {step}: gradient underflow rising for {len(self.recent)} readings, now {under:.1%}.{fix}")
        for msg in msgs:
            self.warnings.append(msg)
            log.warning(msg)
