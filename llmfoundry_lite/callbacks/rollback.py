"""Roll back and skip: a loss spike or a non-finite loss/gradient undoes the batches that led to it.

The guard checks every batch after its backward pass and before the optimizer step
(``Event.AFTER_TRAIN_BATCH``), with one all-reduce of (loss × tokens, tokens, Σ grad²) on the trainer's
device, so every rank sees the same global numbers and takes the same decision: no rank rolls back alone.
Triggers: a non-finite loss; a non-finite gradient (not under fp16, where an overflow is the loss
scaler's business: it skips that step itself); a spike by ``loss_spike.is_spike`` over the recent
losses. On a trigger the gradients are dropped (``p.grad = None``: the optimizer steps over every
parameter without a gradient, so the trigger's batch never reaches an update), and at ``BATCH_END`` the
newest ``Snapshot`` is restored. The batches since that snapshot — the trigger's included — are the
skipped window: the data position is not rewound, so they are never trained on. The clock is not
rewound either (Composer derives the learning rate from it; the skipped batches count as spent), so
checkpoint names, metric steps and evaluation times stay unique.

Every event becomes one line of ``loss_spikes.jsonl`` (the trigger batch's samples, as the spike
recorder writes them, plus a ``rollback`` section), ``rollback/*`` metrics for every logger, and a
warning. After ``max_rollbacks`` events the next one stops the run: ``rollback_report.json`` is written
and ``TrainingUnstable`` raised on every rank.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections import deque
from pathlib import Path
from typing import Any

import torch
from composer.core import Callback, State
from composer.loggers import Logger
from composer.utils import dist

from llmfoundry_lite.callbacks.loss_spike import is_spike
from llmfoundry_lite.callbacks.metrics_file import append_json_line
from llmfoundry_lite.callbacks.snapshot import Snapshot, local
from llmfoundry_lite.callbacks.weights_file import save_full_weights
from llmfoundry_lite.models.loss import loss_token_count

log = logging.getLogger(__name__)


class TrainingUnstable(RuntimeError):
    """Raised on every rank when an event comes after ``max_rollbacks`` rollbacks; carries the report."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        super().__init__(report["message"])


class RollbackGuard(Callback):
    """See the module docstring. ``spike`` holds the loss-spike rule (window, min_history, z_threshold,
    ratio_threshold) or is None (non-finite triggers only); ``streams`` names the stream indices."""

    def __init__(self, out_dir: str, *, max_rollbacks: int, snapshot_interval: int, snapshot_device: str,
                 lr_scale: float, lr_scale_batches: int, save_restored: bool, spike: dict[str, float] | None,
                 streams: list[str], fp16: bool) -> None:
        self.out = Path(out_dir)
        self.max_rollbacks, self.interval, self.device = max_rollbacks, snapshot_interval, snapshot_device
        self.lr_scale, self.lr_scale_batches, self.save_restored = lr_scale, lr_scale_batches, save_restored
        self.spike = dict(spike) if spike else None
        self.history: deque[float] = deque(maxlen=int(self.spike["window"]) if self.spike else 1)
        self.streams, self.fp16 = list(streams), fp16
        self.rollbacks, self.cooldown_left = 0, 0
        self.events: list[dict[str, Any]] = []
        self.snapshot: Snapshot | None = None
        self.window: list[tuple[int, list[int], list[int]]] = []  # (batch, sample ids, stream ids) since the snapshot
        self.pending: dict[str, Any] | None = None
        self._loss_sum: torch.Tensor | None = None
        self._tokens: torch.Tensor | None = None
        self._size_reported = False

    # --- checkpointed state: a resumed run keeps its count, history and cooldown (not the snapshot) ---
    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "rollbacks": self.rollbacks, "cooldown_left": self.cooldown_left,
                "events": self.events}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history.extend(state["history"])
        self.rollbacks, self.cooldown_left = int(state["rollbacks"]), int(state["cooldown_left"])
        self.events = list(state["events"])

    def batch_start(self, state: State, logger: Logger) -> None:
        batch = int(state.timestamp.batch)
        if self.snapshot is None or batch - self.snapshot.batch >= self.interval:
            self.snapshot = Snapshot(state.model, list(state.optimizers), state.scaler, batch, self.device)
            self.window = []
            self._report_size()
        self.window.append((batch, state.batch["sample_index"].tolist(), state.batch["stream"].tolist()))

    def before_train_batch(self, state: State, logger: Logger) -> None:
        # Composer runs this at the start of every attempt at the batch: an attempt that ran out of memory
        # (device_train_microbatch_size: auto) is retried, and its microbatches' losses must not count.
        self._loss_sum = self._tokens = None

    def _report_size(self) -> None:
        """Print the snapshot's memory once, from the first one that holds optimizer state (the one taken
        before the first step has none yet)."""
        params, optim = self.snapshot.nbytes()
        if self._size_reported or not optim:
            return
        self._size_reported = True
        if dist.get_global_rank() == 0:
            print(f"rollback: snapshot every {self.interval} batches on {self.device}: "
                  f"{(params + optim) / 2**20:,.1f} MiB on rank 0 (parameters {params / 2**20:,.1f}, "
                  f"optimizer state {optim / 2**20:,.1f})", flush=True)

    def after_loss(self, state: State, logger: Logger) -> None:
        # Each microbatch's mean loss weighted by its loss-generating tokens: summed over microbatches and
        # ranks and divided by all tokens, it is the loss of the whole global batch (training/parallel.py).
        loss = state.loss if torch.is_tensor(state.loss) else state.loss["total"]
        tokens = loss_token_count(state.batch["labels"]).to(loss.device)
        weighted = loss.detach().float().reshape(()) * tokens
        self._loss_sum = weighted if self._loss_sum is None else self._loss_sum + weighted
        self._tokens = tokens if self._tokens is None else self._tokens + tokens

    def after_train_batch(self, state: State, logger: Logger) -> None:
        loss, grad_sq = self._reduce(state)
        trigger = self._trigger(loss, grad_sq)
        if trigger is None:
            self.history.append(loss)
            self._cool_down(state, logger)
            return
        for p in state.model.parameters():
            p.grad = None  # this batch's update is never applied
        history = list(self.history)
        self.pending = {"trigger": trigger, "loss": loss if math.isfinite(loss) else None,
                        "baseline_mean": statistics.fmean(history) if history else None,
                        "baseline_std": statistics.pstdev(history) if history else None}

    def _reduce(self, state: State) -> tuple[float, float]:
        """(global batch loss, Σ grad² over every rank's gradients): one all-reduce on the device."""
        grads = [local(p.grad) for p in state.model.parameters() if p.grad is not None]
        if self._loss_sum is None:
            raise RuntimeError("rollback guard: no loss was seen in this batch (Event.AFTER_LOSS did not run)")
        # One fused norm over this rank's gradients (its shards under FSDP2), squared so ranks can sum it.
        sq = torch.nn.utils.get_total_norm(grads, norm_type=2.0).float() ** 2 if grads else self._loss_sum.new_zeros(())
        # Σ grad² counts replicated gradients once per replica: fine for a finiteness check, not a norm.
        totals = torch.stack([self._loss_sum, self._tokens.to(self._loss_sum.dtype), sq.to(self._loss_sum.device)])
        dist.all_reduce(totals)  # from the loss and the gradients: already on the trainer's device
        loss_sum, tokens, grad_sq = totals.tolist()
        return loss_sum / max(tokens, 1.0), grad_sq

    def _trigger(self, loss: float, grad_sq: float) -> str | None:
        if not math.isfinite(loss):
            return "nonfinite_loss"
        if not math.isfinite(grad_sq) and not self.fp16:
            return "nonfinite_grad"
        s = self.spike
        if s and len(self.history) >= s["min_history"] and is_spike(loss, list(self.history), s["z_threshold"],
                                                                     s["ratio_threshold"]):
            return "spike"
        return None

    def _cool_down(self, state: State, logger: Logger) -> None:
        """Lower the learning rate of this step; Composer's schedule sets it afresh from the clock next batch."""
        if self.cooldown_left <= 0:
            return
        for opt in state.optimizers:
            for group in opt.param_groups:
                group["lr"] *= self.lr_scale
        self.cooldown_left -= 1
        logger.log_metrics({"rollback/lr_scale": self.lr_scale})

    def batch_end(self, state: State, logger: Logger) -> None:
        if self.pending is None:
            return
        event, self.pending = self.pending, None
        step = int(state.timestamp.batch) - 1  # the trigger batch, 0-based (the clock has moved past it)
        window = self._gather_window()
        record = {"step": step, "epoch": int(state.timestamp.epoch), "loss": event["loss"],
                  "baseline_mean": event["baseline_mean"], "baseline_std": event["baseline_std"],
                  "sample_indices": window[-1]["sample_indices"], "trigger": event["trigger"]}
        assert self.snapshot is not None and window[-1]["batch"] == step, "the window ends at the trigger batch"
        if self.rollbacks >= self.max_rollbacks:
            self._stop(record, logger)
        self.snapshot.restore(state.model, list(state.optimizers), state.scaler)
        self.rollbacks += 1
        self.cooldown_left = self.lr_scale_batches if self.lr_scale < 1 else 0
        restored = (save_full_weights(state, self.out / "rollbacks" / f"rollback-{self.rollbacks}-ba{self.snapshot.batch}.pt")
                    if self.save_restored else None)
        record.update(action="rollback", rollback=self._rollback_section(window, restored))
        self.window = []
        self._write(record, logger)
        log.warning("rollback %d/%d at step %d (%s): restored the snapshot taken before batch %d, skipped %d "
                    "samples in batches %d..%d", self.rollbacks, self.max_rollbacks, step, event["trigger"],
                    self.snapshot.batch, record["rollback"]["skipped_samples"], window[0]["batch"], step)

    def _gather_window(self) -> list[dict[str, Any]]:
        """The window's batches with every rank's samples, in batch order (one object gather)."""
        parts = dist.all_gather_object(self.window)
        return [{"batch": rows[0][0], "sample_indices": [i for r in rows for i in r[1]],
                 "streams": [s for r in rows for s in r[2]]} for rows in zip(*parts, strict=True)]

    def _rollback_section(self, window: list[dict[str, Any]], restored: Path | None) -> dict[str, Any]:
        by_stream = dict.fromkeys(self.streams, 0)
        for row in window:
            for s in row["streams"]:
                by_stream[self.streams[s]] += 1
        return {"number": self.rollbacks, "restored": "memory snapshot", "restored_step": self.snapshot.batch,
                "skipped_batches": [row["batch"] for row in window],
                "skipped_sample_indices": [i for row in window for i in row["sample_indices"]],
                "skipped_samples": sum(len(row["sample_indices"]) for row in window),
                "skipped_by_stream": by_stream,
                "lr_scale": self.lr_scale, "lr_scale_batches": self.cooldown_left,
                "restored_weights": str(restored.relative_to(self.out)) if restored else None}

    def _write(self, record: dict[str, Any], logger: Logger) -> None:
        self.events.append({**{k: record[k] for k in ("step", "trigger", "loss", "action")},
                            "skipped_samples": record.get("rollback", {}).get("skipped_samples", 0)})
        metrics = {"rollback/count": self.rollbacks, f"rollback/trigger/{record['trigger']}": 1,
                   "rollback/step": record["step"]}
        if "rollback" in record:
            rb = record["rollback"]
            metrics.update({"rollback/restored_step": rb["restored_step"], "rollback/skipped_samples": rb["skipped_samples"],
                            **{f"rollback/skipped/{name}": n for name, n in rb["skipped_by_stream"].items()}})
        logger.log_metrics(metrics)
        append_json_line(self.out / "loss_spikes.jsonl", record)

    def _stop(self, record: dict[str, Any], logger: Logger) -> None:
        record["action"] = "stop"
        self._write(record, logger)
        message = (f"training stopped at step {record['step']}: {record['trigger']} after {self.rollbacks} "
                   f"rollback(s) (max_rollbacks={self.max_rollbacks}). The weights of the last checkpoint are "
                   f"good; the events are in {self.out / 'loss_spikes.jsonl'}. Inspect the batches with "
                   f"scripts/replay_spike.py, then lower the learning rate, lengthen the warmup, or raise "
                   f"rollback.max_rollbacks.")
        report = {"message": message, "stopped_at_step": record["step"], "trigger": record["trigger"],
                  "loss": record["loss"], "rollbacks": self.rollbacks, "max_rollbacks": self.max_rollbacks,
                  "events": self.events}
        if dist.get_global_rank() == 0:
            (self.out / "rollback_report.json").write_text(json.dumps(report, indent=1) + "\n")
        raise TrainingUnstable(report)
