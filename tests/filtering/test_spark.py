"""The Spark engine (pyspark local[2]) keeps exactly what the local engine keeps, with pass 2 as DataFrame jobs."""

import random

import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.filtering.dedup import UnionFind
from llmfoundry_lite.filtering.pipeline import run_filter
from tests.filtering.stack_rows import module, stack_row, write_stack


def _equal_outputs(a, b):
    for sub in ("kept", "rejected"):
        names = sorted(f.name for f in (a / sub).glob("*.parquet"))
        assert names == sorted(f.name for f in (b / sub).glob("*.parquet"))
        for name in names:
            assert pq.read_table(a / sub / name).equals(pq.read_table(b / sub / name)), f"{sub}/{name}"


def _active(session) -> bool:
    return not session.sparkContext._jsc.sc().isStopped()


def _chain(variant: int, length: int) -> list[str]:
    """``length`` modules, each a small edit of the previous: the ends are far apart, neighbours near."""
    base = module(variant, functions=60).splitlines(keepends=True)
    out = []
    for step in range(length):
        lines = list(base)
        for j in range(step * 6):  # every step rewrites 6 more lines
            k = 4 + 3 * j
            if k < len(lines):
                lines[k] = f"    return rewritten_{variant}_{j}(request)\n"
        out.append("".join(lines))
    return out


@pytest.mark.slow
def test_clusters_across_files_match_the_local_engine_row_for_row(filter_cfg, tmp_path, spark):
    chains = [_chain(v, 6) for v in (1, 2, 3)]
    rows = [stack_row(f"c{v}_{i}.py", text) for v, chain in enumerate(chains) for i, text in enumerate(chain)]
    rows += [stack_row("dup_of_first.py", chains[0][0].replace("    ", "\t"))]  # exact copy of c0_0
    rows += [stack_row("exact_rep_of_near.py", chains[1][2]), stack_row("its_copy.py", chains[1][2])]
    random.Random(0).shuffle(rows)
    for i in range(3):
        write_stack(tmp_path / "src" / f"p{i}.parquet", rows[i::3])
    kw = {"input": [str(tmp_path / "src")]}
    local = run_filter(filter_cfg(output=str(tmp_path / "local"), **kw), progress=False)
    on_spark = run_filter(filter_cfg(output=str(tmp_path / "spark"), engine="spark", **kw), progress=False)
    assert local["dedup"]["near_clusters"] >= 2 and local["dedup"]["exact_clusters"] == 2
    assert on_spark == local
    _equal_outputs(tmp_path / "local", tmp_path / "spark")
    assert _active(spark)  # a session the engine did not create is never stopped


def test_connected_components_equal_union_find_on_long_paths(spark, tmp_path):
    from llmfoundry_lite.filtering.spark_dedup import connected_components

    rng = random.Random(1)
    nodes = list(range(2000))
    rng.shuffle(nodes)
    edges = [(nodes[i], nodes[i + 1]) for i in range(0, 120)]  # one path of 121 shuffled ids: several rounds
    edges += [(rng.randrange(2000, 3000), rng.randrange(2000, 3000)) for _ in range(600)]
    edges += [(5000 + i, 5000 + i) for i in range(5)]  # self-loops alone are no component
    uf = UnionFind()
    for a, b in edges:
        uf.union(a, b)
    expected = {m: root for root, members in uf.clusters().items() for m in members if m != root}
    df = spark.createDataFrame(edges, "a long, b long")
    got = {r["node"]: r["root"] for r in connected_components(spark, df, tmp_path / "cc").collect()}
    assert got == expected


@pytest.mark.slow
def test_spark_submit_runs_the_filter_script_with_its_master(filter_cfg, filter_corpus, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    local = run_filter(filter_cfg(output=str(tmp_path / "local")), progress=False)
    submit = Path(sys.executable).with_name("spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    out = tmp_path / "submitted"
    proc = subprocess.run([str(submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
                           "--conf", "spark.sql.shuffle.partitions=4",
                           "data_prep/filter_stack.py", "--input", str(filter_corpus), "--output", str(out),
                           "engine=spark", "report=false", "workers=1"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads((out / "stats.json").read_text())
    assert {k: v for k, v in stats.items() if k != "config_hash"} == \
        {k: v for k, v in local.items() if k != "config_hash"}
    _equal_outputs(tmp_path / "local", out)


def test_spark_dedups_sources_into_an_object_store_output_like_the_local_engine(filter_cfg, sources, tmp_path, spark):
    import fsspec

    fs = fsspec.filesystem("memory")
    flags = [f"sources.{n}.input=[{sources / n}]" for n in ("mine", "stack", "so")]
    with pytest.raises(ValueError, match=r"a Spark run needs output.staging=PATH"):
        run_filter(filter_cfg(*flags, input=[], output="memory://lake/f", engine="spark"), progress=False)
    local = run_filter(filter_cfg(*flags, input=[], output=str(tmp_path / "local")), progress=False)
    assert local["dedup"]["cross_source"] == {"so -> mine": 1, "stack -> mine": 2}
    try:
        on_spark = run_filter(filter_cfg(*flags, input=[], output="memory://lake/f", staging=str(tmp_path / "stage"),
                                         engine="spark"), progress=False)
        assert on_spark.pop("published")["deleted"] == 0 and on_spark == local
        for sub in ("kept", "rejected"):
            for part in sorted((tmp_path / "local" / sub).glob("*.parquet")):
                assert fs.cat(f"/lake/f/{sub}/{part.name}") == part.read_bytes()
    finally:
        fs.rm("/lake", recursive=True)
