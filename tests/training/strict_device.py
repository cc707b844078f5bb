"""NCCL's device rule, enforced on a CPU-only machine.

On a GPU Composer always starts an NCCL process group (one GPU included) and NCCL takes only
CUDA tensors: a collective on a host tensor fails with "No backend type associated with device
type cpu". Gloo takes both, so a CPU test run never sees the mistake. This harness brings it back:

- ``Placement`` is a ``TorchFunctionMode`` that follows, for every tensor, whether a GPU run would
  hold it in host memory. Host tensors are what a ``DataLoader`` yields (Composer moves a batch
  to the device only after ``Event.AFTER_DATALOADER``), what a factory makes without naming a
  ``device`` (``torch.tensor([a, b])``), what ``.cpu()`` returns, and whatever is computed from
  host tensors alone. A tensor that names a device (``device=g.device``, ``.to(device)``) or is
  computed from any device tensor (parameters, gradients, optimizer state) is a device tensor.
  The one limit: on CPU ``device="cpu"`` and ``device=param.device`` look alike, so an explicit
  ``device=`` counts as placement.
- ``StrictDevice`` is the trainer's Composer device: its ``tensor_to_device`` / ``batch_to_device``
  / ``module_to_device`` are the only way from host to device.
- ``strict_collectives`` patches ``torch.distributed``'s tensor collectives (Composer's
  ``composer.utils.dist`` calls them too) to raise NCCL's error for a host tensor, and records
  every collective with the first caller outside torch / Composer's ``dist`` wrapper, so a test
  can check that the collective it audits really ran. Object collectives (``all_gather_object``)
  pickle into a tensor on the backend's own device (under NCCL ``torch.cuda.current_device()``,
  which Composer's ``DeviceGPU`` sets), so they take any picklable object: recorded, not checked.
  DTensor's own collectives (``full_tensor``, FSDP2's all-gathers) run on the mesh's device by
  construction and do not go through these functions.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as tdist
from composer.devices import DeviceCPU
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

NCCL_ERROR = "No backend type associated with device type cpu"
TENSOR_COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor",
                      "broadcast", "reduce", "gather", "scatter", "all_to_all", "all_to_all_single")
OBJECT_COLLECTIVES = ("all_gather_object", "broadcast_object_list", "gather_object", "scatter_object_list")
_SKIP_FRAMES = ("torch.", "composer.utils.dist", __name__)


class Placement(TorchFunctionMode):
    """Tracks which live tensors a GPU run would keep in host memory (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._host: dict[int, weakref.ref] = {}
        self.calls: list[tuple[str, str]] = []
        """(collective, caller module) of every collective issued while the harness was on."""

    def mark_host(self, t: torch.Tensor) -> None:
        key = id(t)
        self._host[key] = weakref.ref(t, lambda _ref, key=key: self._host.pop(key, None))

    def place(self, t: torch.Tensor) -> None:
        self._host.pop(id(t), None)

    def is_host(self, t: torch.Tensor) -> bool:
        ref = self._host.get(id(t))
        return ref is not None and ref() is t

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if func is torch.Tensor.cpu:  # on CPU it may return the tensor itself, which then counts as host
            self.mark_host(out)
            return out
        if kwargs.get("device") is not None or func in (torch.Tensor.cuda, torch.Tensor.to) and any(
                isinstance(a, torch.device | str) for a in args[1:]):
            for t in tree_leaves(out):  # names a device: a placement decision (on CPU .to() may return self)
                if isinstance(t, torch.Tensor):
                    self.place(t)
            return out
        if all(self.is_host(t) for t in inputs):  # no tensor input and no device: the default device (host)
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and not any(t is i for i in inputs):  # in-place ops keep their mark
                    self.mark_host(t)
        return out


class StrictDevice(DeviceCPU):
    """The trainer's device: every tensor it returns counts as placed on the accelerator."""

    def __init__(self, placement: Placement) -> None:
        self.placement = placement

    def tensor_to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        moved = tensor.to(self._device)
        if moved is tensor:  # on CPU .to() is the identity; a real move makes a new tensor
            moved = tensor.clone()
        self.placement.place(moved)
        return moved

    def module_to_device(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self._device)
        for t in [*module.parameters(), *module.buffers()]:
            self.placement.place(t)
        return module


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_SKIP_FRAMES):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "?") if frame is not None else "?"


@contextlib.contextmanager
def strict_collectives(placement: Placement) -> Iterator[Placement]:
    """Within: ``torch.distributed``'s collectives raise NCCL's error for a host tensor, DataLoader
    batches are host tensors, and ``placement`` follows every torch call."""
    saved: dict[str, Any] = {}

    def checked(name: str) -> Any:
        real = getattr(tdist, name)

        def collective(*args: Any, **kwargs: Any) -> Any:
            placement.calls.append((name, _caller()))
            if name in TENSOR_COLLECTIVES:
                host = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor) and placement.is_host(t)]
                if host:
                    raise RuntimeError(f"{NCCL_ERROR} ({name} from {placement.calls[-1][1]} got a host tensor of "
                                       f"shape {tuple(host[0].shape)}; move it with state.device.tensor_to_device)")
            return real(*args, **kwargs)

        return collective

    for name in TENSOR_COLLECTIVES + OBJECT_COLLECTIVES:
        saved[name] = getattr(tdist, name)
        setattr(tdist, name, checked(name))
    iter_cls = torch.utils.data.dataloader._BaseDataLoaderIter
    real_next = iter_cls.__next__

    def host_next(self: Any) -> Any:
        batch = real_next(self)
        for t in tree_leaves(batch):
            if isinstance(t, torch.Tensor):
                placement.mark_host(t)
        return batch

    iter_cls.__next__ = host_next
    try:
        with placement:
            yield placement
    finally:
        iter_cls.__next__ = real_next
        for name, fn in saved.items():
            setattr(tdist, name, fn)
