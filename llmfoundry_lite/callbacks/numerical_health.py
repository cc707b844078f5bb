"""Numerical-health monitor in the spirit of a tensor-collection hook: per-layer gradient
statistics, the fraction of gradient elements that are exactly zero (fp16 underflow), NaN/Inf
counts and the fp16 loss scale, with a warning when underflow is high or trending up."""

from __future__ import annotations

import logging
import math
from collections import defaultdict, deque
from collections.abc import Iterable

import torch
from composer.core import Callback, State
from composer.loggers import Logger

log = logging.getLogger(__name__)


# Name parts added by wrappers (ComposerModel, DDP, FSDP, activation checkpointing).
WRAPPER_PARTS = {"model", "module", "_fsdp_wrapped_module", "_checkpoint_wrapped_module"}


def layer_of(param_name: str) -> str:
    """Group parameters by block: ``module.model.blocks.3.attn.qkv_proj.weight`` → ``block3``;
    others by their first non-wrapper name part (``embed``, ``norm``, ``lm_head``)."""
    parts = [p for p in param_name.split(".") if p not in WRAPPER_PARTS]
    return f"block{parts[1]}" if parts[0] == "blocks" else parts[0]


def grad_stats(named_params: Iterable[tuple[str, torch.nn.Parameter]]) -> dict[str, dict[str, float]]:
    """Per-layer norm, min, max, absmax, zero_frac, nan, inf and element count of the gradients."""
    acc: dict[str, dict[str, float]] = defaultdict(
        lambda: {"sumsq": 0.0, "min": math.inf, "max": -math.inf, "absmax": 0.0, "zeros": 0, "nan": 0, "inf": 0, "numel": 0}
    )
    for name, p in named_params:
        if p.grad is None:
            continue
        g = p.grad.detach().float()
        a = acc[layer_of(name)]
        finite = g[torch.isfinite(g)]
        a["nan"] += int(torch.isnan(g).sum())
        a["inf"] += int(torch.isinf(g).sum())
        a["zeros"] += int((g == 0).sum())
        a["numel"] += g.numel()
        if finite.numel():
            a["sumsq"] += float(finite.square().sum())
            a["min"] = min(a["min"], float(finite.min()))
            a["max"] = max(a["max"], float(finite.max()))
            a["absmax"] = max(a["absmax"], float(finite.abs().max()))
    return {
        layer: {"norm": math.sqrt(a["sumsq"]), "min": a["min"], "max": a["max"], "absmax": a["absmax"],
                "zero_frac": a["zeros"] / max(a["numel"], 1), "nan": a["nan"], "inf": a["inf"], "numel": a["numel"]}
        for layer, a in acc.items()
    }


def underflow_fraction(stats: dict[str, dict[str, float]]) -> float:
    """Zero fraction over all layers except the embedding (rows of unseen tokens are legitimately zero)."""
    rows = [s for layer, s in stats.items() if layer != "embed"]
    numel = sum(s["numel"] for s in rows)
    return sum(s["zero_frac"] * s["numel"] for s in rows) / max(numel, 1)


class NumericalHealthMonitor(Callback):
    """Every ``interval`` steps, after gradients are complete (and unscaled) and before the
    optimizer step, log ``grad_health/<layer>/<stat>`` plus totals; warn on NaN/Inf, on an
    underflow fraction above ``underflow_warn``, or when it rose over ``trend_window`` readings."""

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
        metrics.update({"grad_health/underflow_frac": under, "grad_health/nonfinite": nonfinite})
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
