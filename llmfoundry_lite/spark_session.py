"""The Spark session every Spark-backed stage runs on, obtained the way Spark users expect, and the rules
for what its tasks write.

``SparkSession.builder.getOrCreate()`` picks up a notebook's active session or the master and
conf given to ``spark-submit``; ``master`` and ``python`` are applied only when set, and only
a session created here is stopped on exit.

**Attempt-safe writes.** Spark may run one task twice at once (speculation), retry it while a lost
executor's attempt still runs (a zombie), or resubmit a stage. So a task writes every file and directory
under a name of its own (``attempt_tmp``: hidden, ending in ``.tmp``, unique to the task attempt) and
renames it into place when complete: a file with ``os.replace`` (every attempt writes the same bytes, so
the last complete one wins and no reader sees a partial file), a directory only when no attempt put one
there first (``publish_dir``). No attempt truncates or deletes a name another attempt may have completed.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def spark_path(path: str | Path) -> str:
    """``path`` as Spark's readers and writers must be given it: with its scheme, absolute.

    A path without a scheme names the cluster's default filesystem (``fs.defaultFS``: HDFS on YARN and
    Dataproc, DBFS on Databricks), not the local or shared POSIX path the stage's Python code writes on
    executors, so a local path becomes ``file://`` + its absolute form (not percent-encoded: Hadoop takes
    ``=``, ``+``, ``@``, spaces and non-ASCII characters literally). URIs (``dbfs:/``, ``s3a://``, …) pass
    unchanged."""
    text = str(path)
    return text if _SCHEME.match(text) else "file://" + os.path.abspath(text)


def attempt_tag() -> str:
    """A name part no other attempt of this work uses: inside a Spark task its ``taskAttemptId`` (unique in
    the application; ``attemptNumber`` is not: it restarts at 0 when a stage is resubmitted), else the
    process id; plus random bits, for two applications or processes running the same unit."""
    context = None
    if "pyspark" in sys.modules:  # a Spark Python worker has it imported; never import it for a local run
        from pyspark import TaskContext

        context = TaskContext.get()
    who = f"t{context.taskAttemptId()}" if context is not None else f"p{os.getpid()}"
    return f"{who}-{uuid.uuid4().hex[:8]}"


def attempt_tmp(path: Path) -> Path:
    """Where this attempt writes ``path`` before renaming it into place: beside it, hidden (Spark, Hive
    and pyarrow readers skip names starting with ``.``), ending in ``.tmp`` (publishing skips those)."""
    return path.with_name(f".{path.name}.{attempt_tag()}.tmp")


def publish_dir(tmp: Path, final: Path) -> bool:
    """Rename the complete directory ``tmp`` to ``final``, unless an attempt already put ``final`` there
    (then ``tmp`` is removed: the directory is the same work). True when this attempt's directory is the
    one in place."""
    try:
        os.rename(tmp, final)  # atomic; fails when final exists (EEXIST / ENOTEMPTY) instead of replacing it
        return True
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False


class SparkScope:
    """Context manager yielding a session; ``map`` runs picklable tasks as one Spark task each."""

    def __init__(self, app: str, master: str = "", python: str = "", progress: bool = False) -> None:
        if "/" in python:  # a path (not a name looked up on each executor's PATH): absolute, as the driver sees it
            python = os.path.abspath(python)
        self.app, self.master, self.python, self.progress = app, master, python, progress
        self.spark: Any = None
        self.created = False

    def __enter__(self) -> SparkScope:
        """``python`` is the executors' interpreter (it must hold this package and its pinned dependencies).
        PySpark fixes it when the session's context starts, from ``PYSPARK_PYTHON`` (``spark-submit`` sets
        that from ``spark.pyspark.python``); the driver's interpreter is this process, whatever
        ``PYSPARK_DRIVER_PYTHON`` says by now. So it is applied to a session created here, and a running
        session that uses another one is an error instead of a silent mismatch."""
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            running = active.sparkContext.pythonExec
            if self.python and self.python != running:
                raise ValueError(f"spark_python={self.python}: the running Spark session's executors use {running}, "
                                 f"fixed when it started; start it with spark.pyspark.python={self.python} "
                                 f"(spark-submit --conf) or leave spark_python unset")
            self.spark = active
            return self
        if self.python:
            os.environ["PYSPARK_PYTHON"] = self.python  # read by the context this builder starts
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
        """``[fn(*task) for task in tasks]``, one Spark task per item; only the small results come back.

        The task list goes to the executors as one broadcast (pickled once: an object several tasks share,
        such as a config or the list files the driver read, is one copy), not as one serialized copy per
        partition held by the driver; each task gets its index."""
        if not tasks:
            return []
        context = self.spark.sparkContext
        shared = context.broadcast(tasks)
        try:
            out = context.parallelize(range(len(tasks)), len(tasks)).map(lambda i: (i, fn(*shared.value[i]))).collect()
        finally:
            shared.unpersist()
        return [result for _, result in sorted(out, key=lambda r: r[0])]
