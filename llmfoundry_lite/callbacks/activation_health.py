"""Activation health per block (the "Tensor Collection Hook" idea, for forward values): every
``interval`` steps, the max |value| of each block's residual stream (block output), attention
logits q·kᵀ/√D and MLP output, and the share of values beyond fp16's range (|x| > 65504) or close
to bf16's (|x| > ½·bf16 max), with an alert naming the block when a value nears the fp16 range
or jumps above its recent history — before it becomes an inf, then a NaN.

Cost: hooks exist only during a sampled step's forward(s) (registered at ``BEFORE_FORWARD``,
removed at ``AFTER_FORWARD``), so other steps run no hook and activation-checkpoint
recomputation in backward is not counted twice. Attention logits are never materialised by
SDPA / FlexAttention, so on sampled steps they are recomputed here from the block's own q and k
(one extra q/k/v projection), in query chunks of at most ``chunk_elements`` scores. Mask: the
*causal* pairs (key ≤ query) are measured. Under ``doc_mask`` that includes cross-document pairs
the model masks out, so the reading is an upper bound of what softmax sees; a UL2 prefix's
bidirectional pairs are left out. An overflow anywhere in a causal row is what matters for
stability, and the causal max costs no mask construction.

NaN reads as inf in ``absmax`` (so it alerts); it counts in neither share.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import deque
from collections.abc import Callable
from typing import Any

import torch
from composer.core import Callback, State
from composer.loggers import Logger
from composer.utils import dist
from torch import nn

from llmfoundry_lite.callbacks.numerical_health import WRAPPER_PARTS, layer_of
from llmfoundry_lite.models.transformer import Block

log = logging.getLogger(__name__)

FP16_MAX = float(torch.finfo(torch.float16).max)  # 65504
BF16_NEAR = 0.5 * float(torch.finfo(torch.bfloat16).max)  # ~1.70e38
QUANTITIES = ("resid", "attn_logits", "mlp_out")
CHUNK_ELEMENTS = 2**24
"""fp32 scores / values handled at once: 64 MiB (plus a mask and an |x| copy of the same size)."""
MIN_READINGS = 3
"""Earlier readings (at most ``history``) needed before the growth rule fires: a median of one or
two early readings is mostly initialisation noise."""


def abs_stats(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For |values| ``a`` (fp32): max (NaN → inf) and int64 counts (beyond fp16, near bf16's max).

    Returns device tensors; nothing here synchronises with the host."""
    absmax = torch.nan_to_num(a.amax(), nan=math.inf) if a.numel() else a.new_zeros(())
    counts = torch.stack([(a > FP16_MAX).sum(), (a > BF16_NEAR).sum()])
    return absmax, counts


def tensor_stats(x: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """``abs_stats`` of any tensor plus its element count: (absmax, [fp16, bf16_near, numel]).

    Compared in fp32 (a bf16 comparison would round 65504 up to 65536), in chunks so a large
    activation is not copied whole."""
    flat = x.detach().reshape(-1)
    maxes, counts = [flat.new_zeros((), dtype=torch.float32)], []
    for part in flat.split(chunk_elements):
        m, c = abs_stats(part.float().abs())
        maxes.append(m)
        counts.append(c)
    total = torch.stack(counts).sum(0) if counts else flat.new_zeros(2, dtype=torch.int64)
    numel = total.new_tensor([flat.numel()])
    return torch.stack(maxes).amax(), torch.cat([total, numel])


def causal_logit_stats(q_BHTD: torch.Tensor, k_BKTD: torch.Tensor,
                       chunk_elements: int = CHUNK_ELEMENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """(absmax, [fp16, bf16_near, numel]) of the causal attention logits q·kᵀ/√D, in fp32.

    K < H is grouped-query attention (query head h reads key head h // (H/K)). Queries go in
    chunks of rows so at most ``chunk_elements`` scores exist at once; a chunk only multiplies
    the keys up to its last query (the causal upper-right block is skipped, not computed)."""
    B, H, T, D = q_BHTD.shape
    K = k_BKTD.shape[1]
    q_BKGTD = q_BHTD.detach().reshape(B, K, H // K, T, D)
    k_BK1TD = k_BKTD.detach()[:, :, None]
    rows = max(1, chunk_elements // max(1, B * H * T))
    pos = torch.arange(T, device=q_BHTD.device)
    maxes, counts = [q_BHTD.new_zeros((), dtype=torch.float32)], []
    with torch.autocast(q_BHTD.device.type, enabled=False):  # fp32 scores, not autocast's bf16
        for i0 in range(0, T, rows):
            i1 = min(T, i0 + rows)
            s_BKGcS = q_BKGTD[:, :, :, i0:i1].float() @ k_BK1TD[:, :, :, :i1].float().transpose(-1, -2)
            future_cS = pos[None, :i1] > pos[i0:i1, None]
            m, c = abs_stats((s_BKGcS * D**-0.5).abs().masked_fill(future_cS, 0.0))
            maxes.append(m)
            counts.append(c)
    numel = torch.tensor([B * H * T * (T + 1) // 2], device=q_BHTD.device)
    return torch.stack(maxes).amax(), torch.cat([torch.stack(counts).sum(0), numel])


def find_blocks(model: nn.Module) -> dict[str, Block]:
    """``block<i>`` → the decoder's i-th Block, through any wrapper (ComposerModel ``.model``, DDP
    ``.module``, activation-checkpoint wrappers; FSDP2 modules are the blocks themselves). A Block
    outside the decoder's ``blocks`` list (a second model inside the wrapper) keeps its dotted path."""
    blocks: dict[str, Block] = {}
    for name, m in model.named_modules():
        if isinstance(m, Block):
            short = layer_of(name)
            blocks[short if short.startswith("block") and short not in blocks else
                   ".".join(p for p in name.split(".") if p not in WRAPPER_PARTS)] = m
    if not blocks:
        raise ValueError(f"activation_health found no llmfoundry_lite Block in {type(model).__name__}; "
                         "set callbacks.activation_health=null for other models")
    return blocks


def _arg(args: tuple, kwargs: dict[str, Any], i: int, name: str) -> Any:
    return args[i] if len(args) > i else kwargs.get(name)


class ActivationHealthMonitor(Callback):
    """Logs ``act_health/block<i>/{resid,attn_logits,mlp_out}/{absmax,fp16_overflow_frac,bf16_near_frac}``
    and ``act_health/absmax`` (max over all) on step 1 and every ``interval`` steps; warns (and keeps
    the message in ``warnings``) when an absmax exceeds ``fp16_margin`` × 65504 or grew more than
    ``growth_factor`` × the median of that quantity's last ``history`` readings.

    Several microbatches of a step accumulate (max of maxima, sums of counts); at
    ``AFTER_TRAIN_BATCH`` all ranks reduce them (every rank saw different data, under DDP and FSDP
    alike): one MAX and one SUM all-reduce on the trainer's device. Every rank must run it. A
    ``torch.compile``'d forward would not run hooks added after it was traced, so a sampled
    step's forward runs the eager forward (Composer's ``compile_config`` keeps it beside)."""

    def __init__(self, interval: int = 50, fp16_margin: float = 0.5, growth_factor: float = 8.0, history: int = 10,
                 chunk_elements: int = CHUNK_ELEMENTS) -> None:
        for key, value in (("interval", interval), ("fp16_margin", fp16_margin), ("growth_factor", growth_factor),
                           ("history", history), ("chunk_elements", chunk_elements)):
            if value <= 0:
                raise ValueError(f"activation_health.{key} must be positive, got {value}")
        self.interval, self.fp16_margin, self.growth_factor, self.history = interval, fp16_margin, growth_factor, history
        self.chunk_elements = chunk_elements
        self.readings: dict[str, deque[float]] = {}
        """``block<i>/<quantity>`` → its last ``history`` absmax readings (kept in checkpoints)."""
        self.warnings: list[str] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._keys: list[tuple[str, str]] = []
        self._acc: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._compiled_forward: Callable[..., Any] | None = None

    def _sampled(self, state: State) -> bool:
        step = int(state.timestamp.batch) + 1  # this batch's step number (1-based)
        return step == 1 or step % self.interval == 0

    def batch_start(self, state: State, logger: Logger) -> None:
        self._detach(state.model)
        self._acc.clear()

    def before_forward(self, state: State, logger: Logger) -> None:
        self._detach(state.model)  # a forward that raised (an OOM retry) never reached AFTER_FORWARD
        if not self._sampled(state):
            return
        forward = state.model.__dict__.get("forward")
        eager = getattr(forward, "_torchdynamo_orig_callable", None)
        if eager is not None:  # hooks added after tracing are invisible to the compiled graph
            self._compiled_forward, state.model.forward = forward, eager
        self._keys = []
        for name, block in find_blocks(state.model).items():
            self._keys += [(name, q) for q in QUANTITIES]
            self._handles += [
                block.register_forward_hook(self._values_hook(name, "resid")),
                block.attn.register_forward_hook(self._logits_hook(name), with_kwargs=True),
                block.mlp.register_forward_hook(self._values_hook(name, "mlp_out")),
            ]

    def after_forward(self, state: State, logger: Logger) -> None:
        self._detach(state.model)

    def _detach(self, model: nn.Module) -> None:
        """Remove this step's hooks and put the compiled forward back."""
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._compiled_forward is not None:
            model.forward, self._compiled_forward = self._compiled_forward, None

    def _add(self, key: tuple[str, str], absmax: torch.Tensor, counts: torch.Tensor) -> None:
        if key in self._acc:  # another microbatch of the same step
            old_max, old_counts = self._acc[key]
            absmax, counts = torch.maximum(old_max, absmax), old_counts + counts
        self._acc[key] = (absmax, counts)

    def _values_hook(self, name: str, quantity: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            with torch.no_grad():
                self._add((name, quantity), *tensor_stats(out, self.chunk_elements))
        return hook

    def _logits_hook(self, name: str) -> Callable[..., None]:
        def hook(attn: nn.Module, args: tuple, kwargs: dict[str, Any], out: torch.Tensor) -> None:
            if _arg(args, kwargs, 3, "cache") is not None:
                return  # incremental decoding: not a training forward
            x_BTC, rope_2TE = _arg(args, kwargs, 0, "x_BTC"), _arg(args, kwargs, 1, "rope_2TE")
            with torch.no_grad():
                q_BHTD, k_BKTD, _ = attn.qkv(x_BTC, rope_2TE[0], rope_2TE[1])  # under the forward's autocast
                self._add((name, "attn_logits"), *causal_logit_stats(q_BHTD, k_BKTD, self.chunk_elements))
        return hook

    def after_train_batch(self, state: State, logger: Logger) -> None:
        if not self._sampled(state):
            return
        missing = [k for k in self._keys if k not in self._acc]
        if not self._keys or missing:
            raise RuntimeError(f"activation_health: a sampled step ran no forward hook for {missing or 'any block'}; "
                               "the model's forward bypassed its blocks' forward()")
        maxes = state.device.tensor_to_device(torch.stack([self._acc[k][0] for k in self._keys]).float())
        counts = state.device.tensor_to_device(torch.stack([self._acc[k][1] for k in self._keys]))
        dist.all_reduce(maxes, reduce_operation="MAX")
        dist.all_reduce(counts, reduce_operation="SUM")
        self._acc.clear()
        metrics: dict[str, float] = {}
        readings = {}
        for (block, q), m, (over, near, numel) in zip(self._keys, maxes.tolist(), counts.tolist(), strict=True):
            key = f"{block}/{q}"
            readings[key] = (m, over / max(numel, 1))
            metrics.update({f"act_health/{key}/absmax": m, f"act_health/{key}/fp16_overflow_frac": over / max(numel, 1),
                            f"act_health/{key}/bf16_near_frac": near / max(numel, 1)})
        metrics["act_health/absmax"] = max(maxes.tolist())
        logger.log_metrics(metrics)
        self._alert(int(state.timestamp.batch) + 1, readings)

    def _alert(self, step: int, readings: dict[str, tuple[float, float]]) -> None:
        limit = self.fp16_margin * FP16_MAX
        for key, (absmax, over) in readings.items():
            recent = self.readings.setdefault(key, deque(maxlen=self.history))
            msgs = []
            if absmax > limit:
                msgs.append(f"step {step}: {key} absmax {absmax:.4g} > {self.fp16_margin:g} x fp16 max {FP16_MAX:.0f} "
                            f"({over:.3%} of values beyond fp16; they overflow to inf under amp_fp16, not amp_bf16)")
            med = statistics.median(recent) if len(recent) >= min(MIN_READINGS, self.history) else 0.0
            if med > 0 and absmax > self.growth_factor * med:
                msgs.append(f"step {step}: {key} absmax {absmax:.4g} grew {absmax / med:.1f}x over the median {med:.4g} "
                            f"of its last {len(recent)} readings (limit {self.growth_factor:g}x)")
            for msg in msgs:
                self.warnings.append(msg)
                log.warning("activation health: %s", msg)
            recent.append(absmax)

    def state_dict(self) -> dict[str, Any]:
        return {"readings": {k: list(v) for k, v in self.readings.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.readings = {k: deque(v, maxlen=self.history) for k, v in state["readings"].items()}
