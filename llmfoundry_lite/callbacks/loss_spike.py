"""Loss-spike detector: flags a step whose loss leaps above its recent history and writes down
exactly which samples were in that batch, so the spike can be replayed and diagnosed."""

from __future__ import annotations

import logging
import statistics
from collections import deque
from pathlib import Path
from typing import Any

import torch
from composer.core import Callback, State
from composer.loggers import Logger
from composer.utils import dist

from llmfoundry_lite.callbacks.metrics_file import append_json_line

log = logging.getLogger(__name__)
LOSS = "loss/train/total"


def is_spike(loss: float, history: list[float], z_threshold: float, ratio_threshold: float) -> bool:
    """True when ``loss`` exceeds mean + z·std of ``history`` AND ratio·mean (or is not finite)."""
    if not torch.isfinite(torch.tensor(loss)):
        return True
    mean = statistics.fmean(history)
    std = statistics.pstdev(history)
    return loss > mean + z_threshold * std and loss > ratio_threshold * mean


class LossSpikeDetector(Callback):
    """At every batch end, compare the full-batch training loss with the last ``window`` losses.

    A spike appends one JSON line to ``<out_dir>/loss_spikes.jsonl``: step, epoch, loss,
    the baseline mean/std and the global ``sample_index`` of every sample in the batch
    (gathered from all ranks). Spiking losses are kept out of the baseline.
    """

    def __init__(self, out_dir: str, window: int = 50, min_history: int = 10,
                 z_threshold: float = 6.0, ratio_threshold: float = 1.5) -> None:
        self.path = Path(out_dir) / "loss_spikes.jsonl"
        self.history: deque[float] = deque(maxlen=window)
        self.min_history = min_history
        self.z_threshold = z_threshold
        self.ratio_threshold = ratio_threshold
        self.num_spikes = 0

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "num_spikes": self.num_spikes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history.extend(state["history"])
        self.num_spikes = state["num_spikes"]

    def batch_end(self, state: State, logger: Logger) -> None:
        # Composer's all-reduced loss of the whole batch (every microbatch, every rank): the same
        # value on every rank, so all ranks take the same branch and the gather below matches.
        # ``state.loss`` would be only this rank's last microbatch.
        if LOSS not in state.total_loss_dict:  # no loss this step (e.g. fp16 grad scaling skipped it)
            return
        loss = float(state.total_loss_dict[LOSS])
        history = list(self.history)
        if len(history) >= self.min_history and is_spike(loss, history, self.z_threshold, self.ratio_threshold):
            self._record(state, logger, loss, history)
        else:
            self.history.append(loss)

    def _record(self, state: State, logger: Logger, loss: float, history: list[float]) -> None:
        indices = state.batch["sample_index"].tolist() if "sample_index" in state.batch else []
        # A Python list, not a tensor: all_gather_object pickles it onto the backend's own device (under
        # NCCL torch.cuda.current_device(), which Composer's DeviceGPU sets), so no device move is needed.
        all_indices = [i for part in dist.all_gather_object(indices) for i in part]
        self.num_spikes += 1
        record = {
            # The batch's 0-based index, as metrics.jsonl numbers it; checkpoint ep*-ba<step>-rank0.pt
            # (if kept) holds exactly the weights this batch ran with.
            "step": int(state.timestamp.batch) - 1, "epoch": int(state.timestamp.epoch), "loss": loss,
            "baseline_mean": statistics.fmean(history), "baseline_std": statistics.pstdev(history),
            "sample_indices": all_indices,
        }
        logger.log_metrics({"loss_spike/count": self.num_spikes, "loss_spike/loss": loss})
        log.warning("loss spike at step %d: %.4f vs baseline %.4f; batch samples written to %s",
                    record["step"], loss, record["baseline_mean"], self.path)
        append_json_line(self.path, record)
