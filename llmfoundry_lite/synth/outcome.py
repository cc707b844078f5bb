"""What a synthesis engine (``pipeline._local`` or ``spark_synthesis``) hands back to the pipeline, and its clock."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from llmfoundry_lite.synth.report import RowSummary


class Stopwatch:
    """Seconds per stage, for ``stats.json``: where the time of a run went."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._last, 3)
        self._last = now


@dataclass
class Outcome:
    """What an engine's run gives ``stats.json`` and the report (the rows themselves are already written)."""

    counts: dict
    """``collect.merge_counts``' document/function counts, ``dropped`` taken out."""
    dropped: Counter
    by_benchmark: Counter
    verify: dict
    kept: int
    """Pairs kept of the ``seen`` functions (self-aligned rows are added beside them)."""
    origins: Counter
    train: int
    heldout: int
    groups: dict
    summary: RowSummary
    self_align: dict | None = None
