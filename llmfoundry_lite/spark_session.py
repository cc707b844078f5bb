"""The Spark session every Spark-backed stage runs on, obtained the way Spark users expect.

``SparkSession.builder.getOrCreate()`` picks up a notebook's active session or the master and
conf given to ``spark-submit``; ``master`` and ``python`` are applied only when set, and only
a session created here is stopped on exit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


class SparkScope:
    """Context manager yielding a session; ``map`` runs picklable tasks as one Spark task each."""

    def __init__(self, app: str, master: str = "", python: str = "", progress: bool = False) -> None:
        self.app, self.master, self.python, self.progress = app, master, python, progress
        self.spark: Any = None
        self.created = False

    def __enter__(self) -> SparkScope:
        if self.python:  # worker interpreter: must hold this package and its pinned dependencies
            os.environ["PYSPARK_PYTHON"] = self.python
            os.environ["PYSPARK_DRIVER_PYTHON"] = self.python
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            self.spark = active
            return self
        builder = SparkSession.builder.appName(self.app)
        if self.master:
            builder = builder.master(self.master)
        self.spark = builder.config("spark.ui.showConsoleProgress", str(self.progress).lower()).getOrCreate()
        self.created = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.created:
            self.spark.stop()

    def map(self, fn: Callable, tasks: list[tuple]) -> list:
        """``[fn(*task) for task in tasks]``, one Spark task per item; only the small results come back."""
        if not tasks:
            return []
        indexed = list(enumerate(tasks))
        out = self.spark.sparkContext.parallelize(indexed, len(indexed)).map(lambda it: (it[0], fn(*it[1]))).collect()
        return [result for _, result in sorted(out, key=lambda r: r[0])]
