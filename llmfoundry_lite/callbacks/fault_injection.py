"""The fault-injection drill: poison one batch's loss (NaN, or a spike) to prove the rollback guard.

Off unless ``fault_injection:`` is set in the train config. At ``Event.AFTER_DATALOADER`` of the named
batch (its 0-based index in the run, ``timestamp.batch``), every sample of the batch gets a loss factor
under ``models/loss.py``'s ``POISON_KEY``: NaN, or ``spike_scale``. The poisoned sample ids of all ranks
are written to ``<save_folder>/fault_injection.jsonl`` so a test (or a drill) can compare them with what
the guard skipped.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from composer.core import Callback, State
from composer.loggers import Logger
from composer.utils import dist

from llmfoundry_lite.callbacks.metrics_file import append_json_line
from llmfoundry_lite.models.loss import POISON_KEY

log = logging.getLogger(__name__)


class FaultInjector(Callback):
    """Poisons batch ``nan_at_batch`` with NaN and batch ``spike_at_batch`` with ``spike_scale``."""

    def __init__(self, out_dir: str, nan_at_batch: int | None, spike_at_batch: int | None, spike_scale: float) -> None:
        self.path = Path(out_dir) / "fault_injection.jsonl"
        self.plan = {b: ("nan", math.nan) for b in [nan_at_batch] if b is not None}
        self.plan.update({b: ("spike", spike_scale) for b in [spike_at_batch] if b is not None})

    def after_dataloader(self, state: State, logger: Logger) -> None:
        batch = int(state.timestamp.batch)
        if batch not in self.plan:
            return
        kind, factor = self.plan[batch]
        indices = state.batch["sample_index"]
        state.batch[POISON_KEY] = torch.full((len(indices),), factor, dtype=torch.float32)
        poisoned = [i for part in dist.all_gather_object(indices.tolist()) for i in part]
        log.warning("fault injection: %s in the loss of batch %d (%d samples)", kind, batch, len(poisoned))
        append_json_line(self.path, {"batch": batch, "kind": kind, "factor": None if math.isnan(factor) else factor,
                                     "sample_indices": poisoned})
