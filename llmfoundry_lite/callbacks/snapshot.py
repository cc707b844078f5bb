"""An in-memory copy of what a rollback restores: parameters, optimizer state and the fp16 loss scale.

Each rank copies only what it holds: its parameter shards under FSDP2 (the DTensor's local tensor), the
whole parameters under DDP; the optimizer's per-parameter state (Adam's moments and step count) the same
way. The copy is taken and restored in place, tensor by tensor, so no collective runs and no rank needs
another's data. Learning-rate hyper-parameters (``param_groups``) are not copied: Composer sets the
learning rate from the run's clock every batch, and the clock is not rewound (``callbacks/rollback.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.distributed.tensor import DTensor


def local(t: torch.Tensor) -> torch.Tensor:
    """The tensor this rank holds: a DTensor's local shard (the storage itself, not a copy), else ``t``."""
    return t.to_local() if isinstance(t, DTensor) else t


class Snapshot:
    """Parameters + optimizer state of one rank at one batch, on ``device`` ("cpu" or the accelerator)."""

    def __init__(self, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer], scaler: Any | None,
                 batch: int, device: str) -> None:
        self.batch = batch
        """The batch (0-based) that runs first on these weights: the snapshot is taken before it."""
        pin = device == "cpu" and torch.cuda.is_available()
        with torch.no_grad():
            self.params = [_copy(local(p), device, pin) for p in model.parameters()]
            self.optim = [{id(p): {k: _copy(local(v), device, pin) if torch.is_tensor(v) else v
                                   for k, v in opt.state[p].items()}
                           for group in opt.param_groups for p in group["params"] if p in opt.state}
                          for opt in optimizers]
        self.scaler = scaler.state_dict() if scaler is not None and scaler.is_enabled() else None
        if pin:
            torch.cuda.current_stream().synchronize()  # the non_blocking copies must land before training goes on

    def nbytes(self) -> tuple[int, int]:
        """(parameter bytes, optimizer-state bytes) held by this snapshot."""
        params = sum(t.numel() * t.element_size() for t in self.params)
        optim = sum(v.numel() * v.element_size() for per_opt in self.optim for st in per_opt.values()
                    for v in st.values() if torch.is_tensor(v))
        return params, optim

    def restore(self, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer], scaler: Any | None) -> None:
        """Copy the saved values back into the live tensors (same shapes, shards and devices)."""
        with torch.no_grad():
            for p, saved in zip(model.parameters(), self.params, strict=True):
                local(p).copy_(saved, non_blocking=True)
            for opt, saved_state in zip(optimizers, self.optim, strict=True):
                for group in opt.param_groups:
                    for p in group["params"]:
                        _restore_param_state(opt, p, saved_state.get(id(p)))
        if self.scaler is not None:
            scaler.load_state_dict(self.scaler)


def _copy(t: torch.Tensor, device: str, pin: bool) -> torch.Tensor:
    if device == "device":
        return t.detach().clone()
    out = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=pin)
    out.copy_(t.detach(), non_blocking=pin)
    return out


def _restore_param_state(opt: torch.optim.Optimizer, p: torch.Tensor, saved: dict[str, Any] | None) -> None:
    """Put one parameter's optimizer state back; a parameter without state at the snapshot (before its
    first step) loses the state it has gained since, as if those steps had never run."""
    if saved is None:
        opt.state.pop(p, None)
        return
    live = opt.state[p]
    for key, value in saved.items():
        if torch.is_tensor(value) and torch.is_tensor(live.get(key)):
            local(live[key]).copy_(value, non_blocking=True)
        else:
            live[key] = value.clone() if torch.is_tensor(value) else value
