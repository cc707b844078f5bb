"""A console that stays readable at scale: one compact line per log interval.

Composer's ConsoleLogger prints every logged metric on its own line — with per-layer gradient
health that is ~80 lines per interval. Here rank 0 prints one training line (step, loss, lr,
tokens/s, MFU, ETA, plus any pass@k or spike count logged since the last line) and one line per
evaluation; everything else still goes to W&B and metrics.jsonl.
"""

from __future__ import annotations

import time
from typing import Any

from composer.core import State
from composer.loggers import Logger, LoggerDestination
from composer.utils import dist

LOSS, MFU, TOKENS_PER_S = "loss/train/total", "throughput/device/mfu", "throughput/tokens_per_sec"
EXTRA_PREFIXES = ("humaneval/pass@", "loss_spike/count")


def format_eta(seconds: float) -> str:
    """``1h02m``, ``5m07s`` or ``42s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def train_line(step: int, total: int | None, metrics: dict[str, float], eta: float | None) -> str:
    """The one console line of a training interval, from the latest value of each metric."""
    head = f"[step {step}/{total}]" if total else f"[step {step}]"
    parts = []
    if LOSS in metrics:
        parts.append(f"loss {metrics[LOSS]:.4f}")
    lr = next((v for k, v in metrics.items() if k.startswith("lr-")), None)
    if lr is not None:
        parts.append(f"lr {lr:.2e}")
    if TOKENS_PER_S in metrics:
        parts.append(f"{metrics[TOKENS_PER_S]:,.0f} tok/s")
    if MFU in metrics:
        parts.append(f"MFU {metrics[MFU]:.1%}")
    if eta is not None:
        parts.append(f"ETA {format_eta(eta)}")
    parts += [f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith(EXTRA_PREFIXES)]
    return f"{head} " + " | ".join(parts)


class CompactConsoleLogger(LoggerDestination):
    """Prints on global rank 0 every ``interval`` batches and at the end of every evaluation."""

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.latest: dict[str, float] = {}
        self.eval_metrics: dict[str, float] = {}
        self._start: tuple[float, float] | None = None  # (wall clock, elapsed fraction) at fit start
        self._printed_step = -1

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        for key, value in metrics.items():
            if not isinstance(value, int | float) and not hasattr(value, "item"):
                continue
            target = self.eval_metrics if key.startswith("metrics/eval/") else self.latest
            target[key] = float(value.item() if hasattr(value, "item") else value)

    def fit_start(self, state: State, logger: Logger) -> None:
        elapsed = state.get_elapsed_duration()
        self._start = (time.monotonic(), float(elapsed.value) if elapsed is not None else 0.0)

    def _eta(self, state: State) -> float | None:
        elapsed = state.get_elapsed_duration()
        if elapsed is None or self._start is None or float(elapsed.value) <= self._start[1]:
            return None
        wall, f0 = time.monotonic() - self._start[0], self._start[1]
        f = float(elapsed.value)
        return wall * max(1.0 - f, 0.0) / (f - f0)

    def _print_train(self, state: State) -> None:
        step = int(state.timestamp.batch)
        elapsed = state.get_elapsed_duration()
        done = elapsed is not None and float(elapsed.value) >= 1.0
        if dist.get_global_rank() != 0 or step == self._printed_step or (step % self.interval and not done):
            return
        self._printed_step = step
        total = int(state.max_duration.value) if state.max_duration and state.max_duration.unit.value == "ba" else None
        print(train_line(step, total, self.latest, self._eta(state)), flush=True)
        for key in [k for k in self.latest if k.startswith(EXTRA_PREFIXES)]:
            del self.latest[key]  # shown once, on the line after it was logged

    def batch_checkpoint(self, state: State, logger: Logger) -> None:
        # BATCH_CHECKPOINT follows BATCH_END, so the speed monitor has logged this batch's rate.
        self._print_train(state)

    def eval_end(self, state: State, logger: Logger) -> None:
        self._print_train(state)  # an evaluation after BATCH_END: the step's own line comes first
        if dist.get_global_rank() != 0 or not self.eval_metrics:
            return
        shown = " | ".join(f"{k.removeprefix('metrics/eval/')} {v:.4f}" for k, v in sorted(self.eval_metrics.items()))
        print(f"[eval @ step {int(state.timestamp.batch)}] {shown}", flush=True)
        self.eval_metrics.clear()
