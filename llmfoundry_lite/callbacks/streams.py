"""Samples seen per stream of the training mixture: logged every batch, kept in checkpoints."""

from __future__ import annotations

from typing import Any

import torch
from composer.core import Callback, Event, State
from composer.loggers import Logger
from composer.utils import dist


class StreamCounter(Callback):
    """Counts the training samples drawn from each stream, over all ranks.

    Every sample carries its stream index (``training/data.py``). After each dataloader fetch the
    per-stream counts of this rank's device batch are summed over all ranks (one all-reduce of
    ``len(names)`` integers, in the same batch on every rank), added to the running totals and
    logged as ``data/samples/<stream>``. The totals travel in checkpoints, so a resumed run keeps
    counting from where it stopped; ``train_summary.json`` records them as ``samples_by_stream``.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.totals = [0] * len(self.names)

    def run_event(self, event: Event, state: State, logger: Logger) -> None:
        if event != Event.AFTER_DATALOADER:
            return
        streams = state.batch["stream"]
        counts = torch.bincount(streams.reshape(-1).to(torch.int64), minlength=len(self.names))
        if counts.numel() != len(self.names):
            raise ValueError(f"a sample names stream {int(streams.max())}, but the loader has {len(self.names)} "
                             f"streams {self.names}")
        # AFTER_DATALOADER fires before Composer moves the batch to the device (composer 0.32.1
        # trainer.py: run_event(AFTER_DATALOADER) in _train_loop, batch_to_device later in
        # _train_microbatches), so ``counts`` is a host tensor here; on a GPU the process group is
        # NCCL (even for one GPU), which rejects host tensors: move it to the trainer's device first.
        counts = state.device.tensor_to_device(counts)
        dist.all_reduce(counts)
        for i, n in enumerate(counts.tolist()):
            self.totals[i] += int(n)
        logger.log_metrics({f"data/samples/{name}": total for name, total in zip(self.names, self.totals, strict=True)})

    def samples_by_stream(self) -> dict[str, int]:
        return dict(zip(self.names, self.totals, strict=True))

    def state_dict(self) -> dict[str, Any]:
        return {"names": self.names, "totals": self.totals}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["names"] != self.names:
            raise ValueError(f"checkpoint counted streams {state['names']}, this run has {self.names}; "
                             f"resume with the same train_loader.streams")
        self.totals = [int(t) for t in state["totals"]]
