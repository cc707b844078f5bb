"""Planning in tasks: schema checks, identities, Parquet footers and JSONL cut scans run in an engine's map over
groups of files (on Spark, in executors), and the units are those one process plans, name for name."""

import gzip
import json
import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.corpus import identity as identity_mod
from llmfoundry_lite.corpus import readers
from llmfoundry_lite.corpus import units as units_mod
from llmfoundry_lite.corpus.identity import file_identity, identity_key
from llmfoundry_lite.corpus.readers import InputError, list_input_shards
from llmfoundry_lite.corpus.units import Unit, plan_units
from llmfoundry_lite.spark_session import SparkScope

UNIT_BYTES = 2000


def _planned_as_before(inputs: list[str], unit_bytes: int) -> list[Unit]:
    """The planner as it was, every file in this process, one after another: the reference."""
    units: list[Unit] = []
    batch_bytes = max(1, unit_bytes // units_mod.BATCHES_PER_UNIT)
    for shard in list_input_shards(inputs):
        identity = file_identity(shard)
        key = identity_key(identity)
        if shard.kind == "parquet":
            for start, stop, groups in units_mod._parquet_units(shard, unit_bytes):
                units.append(Unit(len(units), shard, key, start, stop, groups, batch_bytes=batch_bytes))
        elif shard.kind == "jsonl" and identity["size"] > unit_bytes:
            for start, stop, byte_range in units_mod._jsonl_units(shard, unit_bytes):
                units.append(Unit(len(units), shard, key, start, stop, byte_range=byte_range))
        else:
            units.append(Unit(len(units), shard, key))
    return units


def _record(i: int) -> str:
    return json.dumps({"content": f"def f{i}():\n    return {i}\n" + "# pad\n" * (i % 9), "path": f"m{i}.py"})


@pytest.fixture
def mixed_inputs(tmp_path):
    """A table directory of every kind of file the planner cuts or keeps whole, many tiny files among them, and a
    source tree."""
    tables = tmp_path / "tables"
    tables.mkdir()
    table = pa.table({"content": [f"x = {i}\n" * (i % 30 + 1) for i in range(60)], "path": [f"p{i}.py" for i in range(60)]})
    pq.write_table(table, tables / "a.parquet", row_group_size=7)  # 9 row groups: several units of whole groups
    pq.write_table(table.slice(0, 0), tables / "b-empty.parquet")
    (tables / "c-big.jsonl").write_text("\n".join(_record(i) for i in range(200)))  # cut into byte ranges
    (tables / "d-small.jsonl").write_text(_record(1) + "\n")
    with gzip.open(tables / "e.jsonl.gz", "wt") as f:
        f.write("\n".join(_record(i) for i in range(200)) + "\n")
    for i in range(70):  # tiny files: several to a task
        (tables / f"t{i:03d}.jsonl").write_text(_record(i) + "\n")
    tree = tmp_path / "tree" / "pkg"
    tree.mkdir(parents=True)
    (tree / "mod.py").write_text("def g():\n    return 2\n")
    return [str(tables), str(tmp_path / "tree")]


def test_units_planned_in_tasks_over_groups_of_files_equal_the_units_planned_in_one_process(mixed_inputs):
    expected = _planned_as_before(mixed_inputs, UNIT_BYTES)
    assert len({u.shard.path for u in expected}) == 76 and len(expected) > 80  # the cut files make several units
    groups: list[list[int]] = []

    def map_fn(fn, tasks):  # tasks and results cross a process boundary as pickles, as on Spark
        groups.append([len(task[0]) for task in tasks])
        return [pickle.loads(pickle.dumps(fn(*pickle.loads(pickle.dumps(task))))) for task in tasks]

    in_tasks = plan_units(mixed_inputs, UNIT_BYTES, map_fn=map_fn)
    assert in_tasks == expected and [u.name for u in in_tasks] == [u.name for u in expected]
    assert plan_units(mixed_inputs, UNIT_BYTES) == expected  # without a map: the same, in this process
    files = len(list_input_shards(mixed_inputs))
    assert len(groups) == 1 and sum(groups[0]) == files and 1 < len(groups[0]) < files
    assert max(groups[0]) <= units_mod.PLAN_FILES_PER_TASK


@pytest.mark.parametrize("n", [0, 1, 64, 65, 1000, 2048, 5000])
def test_task_groups_keep_order_and_bound_the_files_per_task(n):
    items = list(range(n))
    groups = units_mod.task_groups(items, most=32, spread=64)
    assert [x for g in groups for x in g] == items
    assert all(1 <= len(g) <= 32 for g in groups)
    assert len(groups) == (n if n <= 64 else -(-n // min(32, -(-n // 64))))  # one file per task only while few


def test_identities_the_caller_holds_are_used_not_recomputed(mixed_inputs, monkeypatch):
    identities = {s.path: file_identity(s) for s in list_input_shards(mixed_inputs)}
    monkeypatch.setattr(units_mod, "file_identity", lambda shard, *a: pytest.fail(f"identified again: {shard}"))
    assert plan_units(mixed_inputs, UNIT_BYTES, identities) == _planned_as_before(mixed_inputs, UNIT_BYTES)


def _driver_reads_nothing(monkeypatch):
    """Make every per-file read of planning raise in this process (the driver); executors are other processes."""
    def forbidden(name):
        def raise_(*args, **kwargs):
            raise AssertionError(f"{name} ran on the driver")
        return raise_

    for module, name in ((units_mod, "_parquet_groups"), (units_mod, "_jsonl_cuts"), (units_mod, "check_schema"),
                         (units_mod, "file_identity"), (readers, "check_schema"), (readers, "open_parquet"),
                         (identity_mod, "file_identity"), (identity_mod, "_tree_stats")):
        # raising=False: before planning ran in tasks, units had no check_schema of its own to patch
        monkeypatch.setattr(module, name, forbidden(f"{module.__name__}.{name}"), raising=False)


def test_units_planned_on_spark_executors_equal_the_units_planned_in_one_process(mixed_inputs, spark, monkeypatch):
    expected = _planned_as_before(mixed_inputs, UNIT_BYTES)
    _driver_reads_nothing(monkeypatch)
    with SparkScope("plan") as scope:
        assert plan_units(mixed_inputs, UNIT_BYTES, map_fn=scope.map) == expected


def test_an_unusable_input_found_on_an_executor_raises_its_input_error_on_the_driver(mixed_inputs, tmp_path, spark,
                                                                                     monkeypatch):
    bad = tmp_path / "tables" / "t050.parquet"  # among the tiny files: not the first of its task
    pq.write_table(pa.table({"text": ["x"]}), bad)
    shards = list_input_shards(mixed_inputs)
    _driver_reads_nothing(monkeypatch)
    with SparkScope("plan") as scope, pytest.raises(InputError, match=rf"{bad}: missing column 'content'"):
        units_mod.plan_files(shards, UNIT_BYTES, scope.map, check=True)
