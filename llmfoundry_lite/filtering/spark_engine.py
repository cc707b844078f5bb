"""Spark executor: the same per-file tasks as the local engine, and pass 2 as DataFrame jobs.

Passes 1 and 3 run ``filter_shard``/``finalize_shard`` as Spark tasks, one per input file (on a
cluster ``output`` must be on a shared filesystem). Pass 2 is ``spark_dedup``: exact groups,
MinHash band buckets and distributed connected components, with nothing collected but counts.
The session comes from ``spark_session.SparkScope`` (active session or ``spark-submit``'s).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from llmfoundry_lite.spark_session import SparkScope

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import FilterConfig


class SparkEngine(SparkScope):
    """Runs the filter stage's tasks on the active Spark session (or one it creates)."""

    def __init__(self, master: str, python: str, progress: bool) -> None:
        super().__init__("llmfoundry_lite-filter", master, python, progress)

    def map(self, fn: Callable, tasks: list[tuple], desc: str = "", tick: bool = False) -> list:  # type: ignore[override]
        """``[fn(*task) for task in tasks]`` as Spark tasks, results (per-file counts) in task order."""
        return super().map(fn, tasks)

    def dedup(self, cfg: FilterConfig, work: Path, units: list) -> dict:
        """Pass 2 as DataFrame jobs (``spark_dedup``); returns the summary counts."""
        from llmfoundry_lite.filtering.spark_dedup import spark_dedup

        return spark_dedup(self.spark, cfg, work, units)
