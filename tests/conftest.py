"""Fixtures shared across test folders."""

import json
import os
import sys

import pytest

from llmfoundry_lite.eval.problems import load_problems
from llmfoundry_lite.sandbox import Sandbox, SandboxConfig

SHARED_ON_ONE_WORKER = {"spark_cluster": "spark", "server": "serve"}
"""Session fixtures that stand for a whole service (a Spark cluster of JVMs, a serving engine), by the
pytest-xdist group of the tests that use them."""


def pytest_collection_modifyitems(config, items):
    """``make test`` runs the suite on pytest-xdist workers with ``--dist loadgroup``: every test that
    uses one of ``SHARED_ON_ONE_WORKER``'s fixtures (directly or through another fixture) joins that
    fixture's group, so a run starts one Spark cluster and one tiny server, on one worker, as a
    single-process run does; everything else is spread over the workers."""
    if not config.pluginmanager.hasplugin("xdist"):  # ``-p no:xdist``: no groups, and no marker to name them
        return
    for item in items:
        for fixture, group in SHARED_ON_ONE_WORKER.items():
            if fixture in getattr(item, "fixturenames", ()):
                join_group(item, group)
                break


def join_group(item: pytest.Item, group: str) -> None:
    """Put ``item`` in xdist group ``group``. loadgroup schedules by a ``@group`` suffix of the node id,
    which pytest-xdist 3.8 writes to ``item._nodeid``; pytest 9 reads the id from ``item._id`` instead,
    so there the suffix is written here (checked in the suite's xdist run: a group's tests share a worker)."""
    item.add_marker(pytest.mark.xdist_group(group))
    if hasattr(item, "_id") and not item.nodeid.endswith(f"@{group}"):
        from _pytest.nodeid import coerce_node_id

        item._id = coerce_node_id(f"{item.nodeid}@{group}")


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    """A Spark standalone cluster on 127.0.0.1 (master and worker JVMs, the worker in its own work dir)
    for the whole run: ``tests/spark_cluster.py``."""
    from tests.spark_cluster import SparkCluster

    with SparkCluster(tmp_path_factory.mktemp("spark-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def spark(spark_cluster):
    """One session on the test cluster for the whole run (an application's executors start in seconds);
    engines must reuse it (``getOrCreate``) and leave it running. Executors run in the worker's work dir,
    not in this process's working directory."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("tests")
    for key, value in spark_cluster.conf().items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def memory_corpus():
    """Two Stack tables and a JSONL file on fsspec's in-memory filesystem: a remote store without a network."""
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.filtering.stack_rows import module, stack_row, stack_schema

    fs = fsspec.filesystem("memory")
    fs.rm("/bucket", recursive=True) if fs.exists("/bucket") else None
    for i in range(2):
        with fs.open(f"/bucket/stack/data-{i}.parquet", "wb") as f:
            rows = [stack_row(f"m{i}_{j}.py", module(10 * i + j)) for j in range(3)]
            pq.write_table(pa.Table.from_pylist(rows, schema=stack_schema()), f)
    with fs.open("/bucket/stack/extra.jsonl", "wb") as f:
        f.write((json.dumps({"content": module(99), "path": "x.py", "stars": 4}) + "\n").encode())
    yield fs
    fs.rm("/bucket", recursive=True)


# check(candidate) passes only when candidate() returns True: a hostile completion returns True
# exactly when its attack worked, so a sample that passes means the sandbox let it through.
PROBE = {
    "task_id": "Probe/0",
    "prompt": "def attack():\n",
    "test": "def check(candidate):\n    assert candidate() is True\n",
    "entry_point": "attack",
}

FAST = SandboxConfig(timeout=1.0, startup_allowance=0.5)


@pytest.fixture(scope="session")
def sandbox():
    with Sandbox(FAST, workers=2) as sb:
        yield sb


@pytest.fixture(scope="session")
def problems() -> dict[str, dict]:
    return load_problems()
