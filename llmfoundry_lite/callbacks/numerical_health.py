"""Numerical-health monitor in the spirit of a tensor-collection hook: per-layer gradient
statistics, the fraction of gradient elements that are exactly zero (underflow) or would flush to
zero in fp16, NaN/Inf counts, and — under ``amp_fp16`` — the loss scale and the number of
overflow-skipped steps every step, with warnings that name the fix."""

from __future__ import annotations

import logging
import math
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

import torch
from composer.core import Callback, State
from composer.loggers import Logger
from torch.amp.grad_scaler import GradScaler, OptState
from torch.distributed.tensor import DTensor, Shard

from llmfoundry_lite.callbacks.snapshot import local

log = logging.getLogger(__name__)


# Name parts added by wrappers (ComposerModel, DDP, FSDP, activation checkpointing).
WRAPPER_PARTS = {"model", "module", "_fsdp_wrapped_module", "_checkpoint_wrapped_module"}


def layer_of(param_name: str) -> str:
    """Group parameters by block: ``module.model.blocks.3.attn.qkv_proj.weight`` → ``block3``;
    others by their first non-wrapper name part (``embed``, ``norm``, ``lm_head``)."""
    parts = [p for p in param_name.split(".") if p not in WRAPPER_PARTS]
    return f"block{parts[1]}" if parts[0] == "blocks" else parts[0]


FP16_FLUSH = 2.0**-25
"""A nonzero |g| at or below this becomes 0 when cast to fp16: the smallest fp16 subnormal is 2**-24
and round-to-nearest-even sends the halfway point 2**-25 down to 0 (larger values round up to 2**-24)."""

_SUMS = ("sumsq", "zeros", "nan", "inf", "numel", "fp16_flush")
_UNLOGGED = {"numel", "fp16_flush", "nonzero_finite"}  # raw counts, kept for exact totals over layers


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
    """Per-layer norm, min, max, absmax, zero_frac, nan, inf, element count and ``fp16_underflow_frac``
    (share of nonzero finite elements that an fp16 cast flushes to zero) of the gradients.

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
        g = torch.cat([local(x).float().reshape(-1) for x in grads])
        finite = torch.isfinite(g)
        clean = torch.where(finite, g, torch.zeros_like(g))
        # NaN and ±inf compare False with the threshold, so the flush count holds finite values only.
        flush = torch.logical_and(g != 0, g.abs() <= FP16_FLUSH).sum().float()
        sums.append(torch.stack([clean.square().sum(), (g == 0).sum().float(), torch.isnan(g).sum().float(),
                                 torch.isinf(g).sum().float(), torch.tensor(float(g.numel()), device=g.device), flush]))
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
        nonzero_finite = a["numel"] - a["zeros"] - a["nan"] - a["inf"]
        out[layer].update(fp16_flush=int(a["fp16_flush"]), nonzero_finite=int(nonzero_finite),
                          fp16_underflow_frac=a["fp16_flush"] / max(nonzero_finite, 1))
    return out


def global_norm(stats: dict[str, dict[str, float]]) -> float:
    """L2 norm of all gradients together (finite elements), from the per-layer norms."""
    return math.sqrt(sum(s["norm"] ** 2 for s in stats.values()))


def underflow_fraction(stats: dict[str, dict[str, float]]) -> float:
    """Zero fraction over all layers except the embedding (rows of unseen tokens are legitimately zero)."""
    rows = [s for layer, s in stats.items() if layer != "embed"]
    numel = sum(s["numel"] for s in rows)
    return sum(s["zero_frac"] * s["numel"] for s in rows) / max(numel, 1)


def fp16_underflow_fraction(stats: dict[str, dict[str, float]]) -> float:
    """Share of the nonzero finite gradient elements (embedding left out, as above) that an fp16 cast
    would flush to zero: what fp16 without a loss scale would lose."""
    rows = [s for layer, s in stats.items() if layer != "embed"]
    return sum(s["fp16_flush"] for s in rows) / max(sum(s["nonzero_finite"] for s in rows), 1)


def uses_fp16_scaling(state: State) -> bool:
    """Composer's own rule (``Trainer._use_grad_scaling``): the scaler is used under amp_fp16 only.
    Composer also builds an enabled GradScaler for amp_bf16 on GPU, which never scales anything."""
    return str(state.precision.value) == "amp_fp16" and state.scaler is not None and state.scaler.is_enabled()


def unscaled_found_inf(scaler: GradScaler, optimizers: Iterable[torch.optim.Optimizer]) -> torch.Tensor:
    """Nonzero when this step's gradients held inf/NaN: the very flag ``scaler.step`` skips the
    optimizer step on and ``scaler.update`` halves the scale on (it clears it afterwards). Raises if
    the gradients are not unscaled yet, so statistics are never taken on scaled gradients."""
    flags = []
    for opt in optimizers:
        if scaler._per_optimizer_states[id(opt)]["stage"] is not OptState.UNSCALED:
            raise RuntimeError("amp_fp16: gradients are still multiplied by the loss scale at AFTER_TRAIN_BATCH "
                               "(Composer unscales them before that event); this Composer version changed the order")
        flags.extend(scaler._found_inf_per_device(opt).values())
    if not flags:
        raise RuntimeError("amp_fp16: the grad scaler recorded no inf/NaN check for this step")
    # A new tensor, and no device sync: update() adds into the first flag in place.
    return torch.stack([f.to(flags[0].device) for f in flags]).sum()


class NumericalHealthMonitor(Callback):
    """Every ``interval`` steps, after gradients are complete, before clipping and the optimizer step,
    log ``grad_health/<layer>/<stat>`` plus totals (``global_norm``: the pre-clip norm over all shards;
    ``underflow_frac``; ``fp16_underflow_frac``); warn on NaN/Inf, on an underflow fraction above
    ``underflow_warn``, or when it rose over ``trend_window`` readings. Every rank must call it (the
    shard statistics are reduced collectively).

    The gradients are always the true, unscaled ones: under amp_fp16 Composer runs
    ``scaler.unscale_(optimizer)`` before Event.AFTER_TRAIN_BATCH (checked here, see
    ``unscaled_found_inf``), so the statistics mean the same in fp16, bf16 and fp32 runs.

    Under amp_fp16 it also logs, every step at BATCH_END (after ``scaler.update()``), ``fp16/loss_scale``
    (the scale the next step uses) and ``fp16/skipped_steps``: the running count of steps whose
    optimizer step the scaler skipped, read from the scaler's own inf/NaN flag for that step (identical
    on every rank: DDP gradients are all-reduced, FSDP2's ShardedGradScaler all-reduces the flag). The
    count survives resumption (``state_dict``). It warns when more than ``skip_warn`` of the last
    ``skip_window`` steps were skipped — the skips of the start, while the scale comes down from 2**16
    before the first good step, are counted but not judged — or when the scale falls below 1.
    """

    def __init__(self, interval: int = 50, underflow_warn: float = 0.05, trend_window: int = 5,
                 skip_warn: float = 0.05, skip_window: int = 100) -> None:
        self.interval = interval
        self.underflow_warn = underflow_warn
        self.recent: deque[float] = deque(maxlen=trend_window)
        self.warnings: list[str] = []
        self.skip_warn = skip_warn
        self.skipped_steps = 0
        self.recent_skips: deque[bool] = deque(maxlen=skip_window)
        self._found_inf: torch.Tensor | None = None
        self._alarms: set[str] = set()  # fp16 conditions already reported, until they clear

    def state_dict(self) -> dict[str, Any]:
        return {"skipped_steps": self.skipped_steps, "recent_skips": list(self.recent_skips)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:  # a checkpoint written before this callback kept state: nothing was counted
            return
        self.skipped_steps = int(state["skipped_steps"])
        self.recent_skips.clear()
        self.recent_skips.extend(bool(x) for x in state["recent_skips"])

    def after_train_batch(self, state: State, logger: Logger) -> None:
        if uses_fp16_scaling(state):
            self._found_inf = unscaled_found_inf(state.scaler, state.optimizers)
        step = int(state.timestamp.batch) + 1  # this batch's step number (1-based)
        if step % self.interval and step != 1:
            return
        stats = grad_stats(state.model.named_parameters())
        metrics: dict[str, float] = {}
        for layer, s in stats.items():
            metrics.update({f"grad_health/{layer}/{k}": v for k, v in s.items() if k not in _UNLOGGED})
        under = underflow_fraction(stats)
        nonfinite = sum(s["nan"] + s["inf"] for s in stats.values())
        metrics.update({"grad_health/underflow_frac": under, "grad_health/nonfinite": nonfinite,
                        "grad_health/global_norm": global_norm(stats),
                        "grad_health/fp16_underflow_frac": fp16_underflow_fraction(stats)})
        logger.log_metrics(metrics)
        self.recent.append(under)
        # Under amp_fp16 an inf gradient is the scaler's routine signal (it skips the step and halves the
        # scale); the skip share judges those, so only the other precisions warn on every one.
        self._warn(step, under, 0 if uses_fp16_scaling(state) else nonfinite, str(state.precision.value))

    def batch_end(self, state: State, logger: Logger) -> None:
        if not uses_fp16_scaling(state):
            return
        if self._found_inf is None:
            raise RuntimeError("amp_fp16: BATCH_END without this step's AFTER_TRAIN_BATCH; "
                               "the skip count would be wrong")
        # scaler.step() already waited on this flag, so .item() costs no extra device sync.
        skipped, self._found_inf = bool(self._found_inf.item()), None
        scale = float(state.scaler.get_scale())
        self.skipped_steps += skipped
        if self.recent_skips or not skipped:  # the start's calibration skips are not judged
            self.recent_skips.append(skipped)
        logger.log_metrics({"fp16/loss_scale": scale, "fp16/skipped_steps": self.skipped_steps})
        self._warn_fp16(int(state.timestamp.batch), scale)

    def _warn_fp16(self, step: int, scale: float) -> None:
        n = sum(self.recent_skips)
        fix = "Switch to precision=amp_bf16 (fp32's range; any Ampere or newer GPU)."
        self._alarm("skips", n > self.skip_warn * self.recent_skips.maxlen,
                    f"step {step}: {n} of the last {len(self.recent_skips)} steps were skipped for fp16 overflow "
                    f"(over {self.skip_warn:.0%} of {self.recent_skips.maxlen}); {self.skipped_steps} in all. {fix}")
        self._alarm("scale", scale < 1, f"step {step}: fp16 loss scale fell to {scale:g} (< 1): the gradients "
                    f"overflow fp16 even unscaled, so scaling cannot help. {fix}")

    def _alarm(self, key: str, active: bool, msg: str) -> None:
        """Warn once when a condition starts; again only after it has cleared (no warning every step)."""
        if not active:
            self._alarms.discard(key)
        elif key not in self._alarms:
            self._alarms.add(key)
            self.warnings.append(msg)
            log.warning(msg)

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
