"""Global gradient-norm clipping that is correct under DDP and FSDP2.

Composer 0.32.1's ``GradientClipping`` algorithm only clips FSDP1 modules when FSDP is on, so
under FSDP2 it silently clips nothing. Here the norm is computed over every gradient — DTensor
shards included, reduced over the mesh — then every gradient is scaled by
``min(1, max_norm / norm)``: the same rule as ``torch.nn.utils.clip_grad_norm_`` on one device.
"""

from __future__ import annotations

import torch
from composer.core import Callback, State
from composer.loggers import Logger
from torch.distributed.tensor import DTensor


def global_grad_norm(parameters: list[torch.nn.Parameter]) -> torch.Tensor:
    """L2 norm of all gradients as one vector (every shard on every rank counted once)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    return norm.full_tensor() if isinstance(norm, DTensor) else norm


class GlobalGradClip(Callback):
    """Clip to ``max_norm`` after the last microbatch's backward, before the optimizer step.

    It must run after any callback that inspects raw gradients in ``after_train_batch``
    (the numerical-health monitor), so the trainer appends it last. Logs the pre-clip norm
    as ``grad_norm/pre_clip`` every step.
    """

    def __init__(self, max_norm: float) -> None:
        self.max_norm = max_norm

    def after_train_batch(self, state: State, logger: Logger) -> None:
        params = [p for p in state.model.parameters() if p.grad is not None]
        norm = global_grad_norm(params)
        torch.nn.utils.clip_grads_with_norm_(params, self.max_norm, norm)
        logger.log_metrics({"grad_norm/pre_clip": float(norm)})
