"""What torch 2.7.0's FSDP2 needs to run HYBRID_SHARD on CPU (gloo), so the 2-D mesh is tested here.

On NCCL nothing changes. On gloo, HSDP's backward fails twice, both in code paths no CPU run
had exercised upstream:

1. ``all_reduce(op=ReduceOp.AVG)`` over the replicate groups: "Cannot use ReduceOp.AVG with
   Gloo". Fix: for gloo groups FSDP2 takes its own fp16 path — SUM, then divide by the
   data-parallel size (``_get_gradient_divide_factors`` returns (1, size)): the same average.
2. ``assert all_reduce_event is not None`` in ``FSDPParamGroup.post_backward``: CPU "streams"
   are no-ops whose ``record_event`` returns None. Fix: CPU streams return a no-op event
   (``wait_event`` on a CPU stream ignores it, as it ignores everything).

Both are applied once per process, only for torch 2.7.x. Later releases reduce on gloo without
help (checked with `make test-torch-next`, see docs/development.md): for those in ``NATIVE`` nothing
is patched. Any other release must be re-checked first: ``enable_gloo_hsdp`` refuses it rather than
patch it blindly (the private function patched here changed signature after 2.7).
"""

from __future__ import annotations

from typing import Any

import torch


class _NoOpEvent:
    """Stands in for a device event on CPU, where work is already ordered."""

    def record(self, stream: Any = None) -> None:
        return None

    def synchronize(self) -> None:
        return None

    def wait(self, stream: Any = None) -> None:
        return None

    def query(self) -> bool:
        return True


_EVENT = _NoOpEvent()
PATCHED = ("2.7",)
"""torch releases (major.minor) whose FSDP2 needs both fixes on gloo."""
NATIVE = ("2.9", "2.10", "2.11", "2.12", "2.13", "2.14", "2.15")
"""torch releases whose FSDP2 was checked to run FULL and HYBRID_SHARD on gloo unpatched (2.8 is not
among them: unpatched, its FULL_SHARD gradients on gloo came out wrong)."""


def _release(version: str) -> str:
    """``"2.15.0+cu132"`` → ``"2.15"``."""
    return ".".join(version.split("+")[0].split(".")[:2])


def supported(version: str) -> bool:
    """Whether FSDP2 on gloo was checked on this torch release (patched or as it is)."""
    return _release(version) in PATCHED + NATIVE


def enable_gloo_hsdp() -> None:
    """Install both fixes where needed (idempotent); raises for a torch release not checked."""
    if not supported(torch.__version__):
        raise RuntimeError(f"llmfoundry_lite.training.gloo_hsdp was checked on torch {PATCHED + NATIVE} only, "
                           f"found {torch.__version__}; run tests/training/test_gloo_hsdp.py on it, then add "
                           f"its release to NATIVE (or patch it) before training FSDP2 on CPU")
    if _release(torch.__version__) in NATIVE:
        return
    from torch.distributed.fsdp._fully_shard import _fsdp_collectives as collectives

    original = collectives._get_gradient_divide_factors
    if getattr(original, "gloo_safe", False):
        return

    def divide_factors(reduce_scatter_group: Any, all_reduce_group: Any, reduce_dtype: torch.dtype,
                       device_type: str = "") -> tuple[Any, Any]:
        if torch.distributed.get_backend(reduce_scatter_group) != "gloo":
            return original(reduce_scatter_group, all_reduce_group, reduce_dtype, device_type)
        size = reduce_scatter_group.size() * (all_reduce_group.size() if all_reduce_group is not None else 1)
        return 1.0, float(size)

    divide_factors.gloo_safe = True  # type: ignore[attr-defined]
    collectives._get_gradient_divide_factors = divide_factors
    torch.cpu.Stream.record_event = lambda self: _EVENT  # type: ignore[method-assign]
