"""A local file logger: every metric as one JSON line, flushed at once (safe across crashes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from composer.loggers import LoggerDestination
from composer.utils import dist


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


class JSONLinesLogger(LoggerDestination):
    """Appends ``{"step": N, "<metric>": value, ...}`` lines to ``path`` (rank 0 only).

    Values keep full float precision so runs can be compared exactly. A resumed run appends
    again from its checkpoint's step, so readers keep the last line per step and metric
    (``read_metrics``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        append_json_line(self.path, {"step": step, **{k: _plain(v) for k, v in metrics.items()}})


def append_json_line(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` as one JSON line to ``path`` on rank 0 (other ranks do nothing), creating its folder:
    the one writer of the run's ``*.jsonl`` files (metrics, loss spikes and rollbacks, fault injection)."""
    if dist.get_global_rank() != 0:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def read_metrics(path: str | Path, name: str) -> dict[int, float]:
    """``{step: value}`` of one metric from a metrics.jsonl, last write per step winning."""
    values: dict[int, float] = {}
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        if name in row:
            values[row["step"]] = row[name]
    return dict(sorted(values.items()))
