"""Lion with decoupled weight decay (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").

Composer 0.32 ships DecoupledAdamW but no Lion, so the update is written here:
    c = β1·m + (1−β1)·g;  p ← p·(1 − (lr/lr₀)·wd) − lr·sign(c);  m ← β2·m + (1−β2)·g
Weight decay follows Composer's "decoupled" convention (scaled by the schedule's lr/lr₀, not by lr),
matching DecoupledAdamW so the two optimizers read the same config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


class DecoupledLionW(torch.optim.Optimizer):
    """Sign-of-momentum optimizer: one state tensor per parameter (half of Adam's memory)."""

    def __init__(self, params: Iterable, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0) -> None:
        if lr <= 0 or not all(0.0 <= b < 1.0 for b in betas) or weight_decay < 0:
            raise ValueError(f"DecoupledLionW: need lr > 0, 0 <= betas < 1, weight_decay >= 0; got {lr}, {betas}, {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay, "initial_lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                if wd:
                    p.mul_(1 - (lr / group["initial_lr"]) * wd)
                p.add_(torch.sign(m.mul(beta1).add_(p.grad, alpha=1 - beta1)), alpha=-lr)
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)
        return loss
