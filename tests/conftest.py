"""Fixtures shared across test folders."""

import json
import os
import sys

import pytest

from llmfoundry_lite.eval.problems import load_problems
from llmfoundry_lite.sandbox import Sandbox, SandboxConfig


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
