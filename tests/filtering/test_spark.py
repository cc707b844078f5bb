"""The Spark engine on a standalone cluster (tests/spark_cluster.py) keeps exactly what the local engine keeps, with pass 2 as DataFrame jobs."""

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
def test_spark_submit_with_speculation_on_the_cluster_writes_what_the_local_engine_writes(filter_cfg, filter_corpus,
                                                                                          tmp_path, spark_cluster):
    """A second driver (``spark-submit`` of the filter script) on the cluster, every task speculated: attempts
    of one unit run at once, and what they leave equals the local engine's output."""
    import json
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    from tests.spark_cluster import SPECULATION

    local = run_filter(filter_cfg(output=str(tmp_path / "local"), unit_bytes=4096), progress=False)
    submit = Path(sys.executable).with_name("spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    out = tmp_path / "submitted"
    proc = subprocess.run([str(submit), *spark_cluster.submit_args(**SPECULATION, **{"spark.log.level": "INFO"}),
                           "data_prep/filter_stack.py", "--input", str(filter_corpus), "--output", str(out),
                           "engine=spark", "report=false", "workers=1", "unit_bytes=4096"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # A task's second attempt ("task 3.1") is its speculative copy here (no task failed).
    speculated = len(re.findall(r"Starting task \d+\.[1-9]", proc.stderr))
    print(f"speculative task attempts launched: {speculated}")
    assert speculated > 0, "no task was speculated: the test did not test what it says"
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


AWKWARD = ("lang=python", "a+b@c d", "naïve")  # Hive partition folder, URI-reserved characters, non-ASCII


def _awkward(root):
    """``root/lang=python/a+b@c d/naïve/`` reached through a symlink: names Python's ``as_uri`` percent-encodes
    and Hadoop does not, and a path whose resolved form is not the one Spark is given."""
    real = root.joinpath(*AWKWARD)
    real.mkdir(parents=True)
    (root / "via-link").symlink_to(real, target_is_directory=True)
    return root / "via-link"


def test_dedup_drops_the_same_rows_under_awkward_paths_as_the_local_engine(filter_cfg, tmp_path, spark):
    """Pass-1 rows find their unit by the key they carry, not by comparing file-name strings; before, the join
    of Spark's file names with Python's URIs was empty here: clusters were counted and nothing was dropped."""
    chains = [_chain(v, 4) for v in (1, 2)]
    rows = [stack_row(f"c{v}_{i}.py", text) for v, chain in enumerate(chains) for i, text in enumerate(chain)]
    rows += [stack_row("copy.py", chains[0][0]), stack_row("copy2.py", chains[1][1])]
    src = _awkward(tmp_path / "in") / "src"
    for i in range(2):
        write_stack(src / f"part={i}.parquet", rows[i::2])
    out = _awkward(tmp_path / "out")
    local = run_filter(filter_cfg(output=str(out / "local"), input=[str(src)]), progress=False)
    on_spark = run_filter(filter_cfg(output=str(out / "spark"), input=[str(src)], engine="spark"), progress=False)
    assert local["dedup"]["exact_clusters"] == 2 and local["dedup"]["near_clusters"] >= 1
    dropped = sum(n for reason, n in local["rejected_by_reason"].items() if reason.endswith("duplicate"))
    assert dropped >= 3
    assert on_spark == local
    _equal_outputs(out / "local", out / "spark")


def test_pass_two_refuses_to_decide_from_fewer_records_than_pass_one_wrote(filter_cfg, tmp_path, spark):
    """A unit whose rows do not join (here: a key no row carries) is an error, not a silent zero."""
    import json
    from pathlib import Path

    from llmfoundry_lite.filtering.dedup_pass import PassUnit
    from llmfoundry_lite.filtering.spark_dedup import spark_dedup

    cfg = filter_cfg(output=str(tmp_path / "out"))
    run_filter(cfg, progress=False)
    work = Path(cfg.output) / "work"
    units = []
    for i, meta in enumerate(sorted((work / "pass1").glob("*.json"))):
        key = pq.read_table(meta.with_suffix(".parquet"), columns=["key"])["key"][0].as_py()
        units.append(PassUnit(meta.stem, i, key, "", json.loads(meta.read_text())["records"]))
    assert len(units) == 2
    assert spark_dedup(spark, cfg, work, units)["exact_clusters"] >= 0  # consistent: decides
    with pytest.raises(RuntimeError, match=r"pass 2 joined \d+ pass-1 records, but pass 1 wrote \d+ in 2 units"):
        spark_dedup(spark, cfg, work, [units[0], units[1]._replace(file_key="not-a-key")])


def test_relative_paths_and_a_non_file_default_filesystem(filter_cfg, filter_corpus, tmp_path, spark, monkeypatch):
    """The driver resolves every local path and gives Spark its scheme: a relative input/output/opt-out list (run
    from any directory) means the driver's directory on executors that run elsewhere, and a cluster whose default
    filesystem is not ``file:`` (HDFS on YARN, DBFS) still reads and writes the local/shared paths named."""
    import json
    import shutil

    driver = tmp_path / "driver"
    (driver / "lists").mkdir(parents=True)
    (driver / "lists" / "opt-out.txt").write_text("acme/secret\n")  # read by each task, where it runs
    row = {"content": "def hidden():\n    return 42\n", "path": "lib/hidden.py", "repository_name": "acme/secret",
           "id": "hidden"}
    (filter_corpus / "c.jsonl").write_text(json.dumps(row) + "\n")
    local = run_filter(filter_cfg(f"opt_out.files=[{driver / 'lists' / 'opt-out.txt'}]", output=str(tmp_path / "local")),
                       progress=False)
    assert local["rejected_by_reason"]["opt_out"] == 1
    shutil.copytree(filter_corpus, driver / "in")
    monkeypatch.chdir(driver)
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    previous = hadoop.get("fs.defaultFS")
    hadoop.set("fs.defaultFS", "nofs:///")  # a scheme-less path handed to Spark fails: "No FileSystem for scheme"
    try:
        on_spark = run_filter(filter_cfg("opt_out.files=[lists/opt-out.txt]", input=["in"], output="out",
                                         engine="spark"), progress=False)
    finally:
        hadoop.set("fs.defaultFS", previous)
    for stats in (local, on_spark):  # the same files, under other paths (the list's path is in the config hash)
        stats.pop("inputs_key"), stats.pop("config_hash")
    assert on_spark == local
    _equal_outputs(tmp_path / "local", driver / "out")
