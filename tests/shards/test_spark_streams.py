"""Streams on Spark: one task per unit routes to every stream; tokenizer threads follow the task's cores."""

from __future__ import annotations

import dataclasses
import os

import pytest

from llmfoundry_lite.corpus.units import plan_units
from llmfoundry_lite.shards import build
from llmfoundry_lite.shards.config import ShardsConfig

from .conftest import shard_cfg, tree_bytes


def _two(corpus, out, **kw) -> list[ShardsConfig]:
    return [shard_cfg(corpus, out / "py", languages=["Python"], **kw),
            shard_cfg(corpus, out / "rest", exclude_languages=["Python"], **kw)]


@pytest.mark.slow
def test_spark_streams_are_byte_identical_to_local(corpus_dir, tmp_path, spark):
    local = build.build_shard_streams(_two(corpus_dir, tmp_path / "local"))
    on_spark = build.build_shard_streams(_two(corpus_dir, tmp_path / "spark", engine="spark"))
    assert [m["units_run"] for m in on_spark] == [m["units_run"] for m in local] == [18, 18]
    assert tree_bytes(tmp_path / "spark") == tree_bytes(tmp_path / "local")
    assert not [p for p in (tmp_path / "spark").rglob("*") if p.name.endswith(".tmp")]


def _write_in_task(unit, cfgs) -> tuple[str | None, int, int]:
    """Runs inside a Spark task: write the unit, then report the tokenizer thread setting and the task's cores."""
    from pyspark import TaskContext

    from llmfoundry_lite.shards.writer import write_unit

    records = write_unit(unit, cfgs)
    return os.environ.get("RAYON_NUM_THREADS"), TaskContext.get().cpus(), len(records)


@pytest.mark.slow
def test_tokenizer_threads_follow_the_spark_tasks_cores(corpus_dir, tmp_path, spark):
    from llmfoundry_lite.spark_session import SparkScope

    cfgs = [dataclasses.replace(c, engine="spark") for c in _two(corpus_dir, tmp_path)]
    units = plan_units(cfgs[0].input, cfgs[0].unit_bytes)[:2]
    with SparkScope("rayon-threads") as scope:  # the active test session
        results = scope.map(_write_in_task, [(u, cfgs) for u in units])
    task_cpus = int(spark.conf.get("spark.task.cpus", "1"))
    assert [(threads, cpus, n) for threads, cpus, n in results] == [(str(task_cpus), task_cpus, 2)] * len(units)
