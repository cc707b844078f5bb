"""The shard stage on Spark writes the same bytes as the local engine."""

import dataclasses

import pytest

from llmfoundry_lite.shards.build import build_shards

from .conftest import shard_cfg, tree_bytes


@pytest.mark.slow
def test_spark_units_are_byte_identical_to_local(corpus_dir, tmp_path, spark):
    local = build_shards(shard_cfg(corpus_dir, tmp_path / "local", workers=2))
    on_spark = build_shards(shard_cfg(corpus_dir, tmp_path / "spark", engine="spark"))
    assert on_spark["units_run"] == local["units_run"] == 18  # 4 + 5 row groups, 9 JSONL lines at unit_bytes=1
    assert tree_bytes(tmp_path / "spark") == tree_bytes(tmp_path / "local")
    assert not spark.sparkContext._jsc.sc().isStopped()


@pytest.mark.slow
def test_relative_paths_name_the_drivers_directory_on_executors(corpus_dir, tmp_path, spark, monkeypatch):
    """Input, tokenizer and output given relative to the driver's directory (executors run in the worker's),
    on a cluster whose default filesystem is not ``file:``: the same bytes as the local engine."""
    import shutil

    from .conftest import ASSET_TOKENIZER

    driver = tmp_path / "driver"
    shutil.copytree(corpus_dir, driver / "corpus")
    shutil.copytree(ASSET_TOKENIZER, driver / "tok")
    monkeypatch.chdir(driver)
    relative = dataclasses.replace(shard_cfg(corpus_dir, tmp_path / "unused"), input=["corpus"], tokenizer="tok")
    local = build_shards(dataclasses.replace(relative, output="local", workers=1))
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    previous = hadoop.get("fs.defaultFS")
    hadoop.set("fs.defaultFS", "nofs:///")
    try:
        on_spark = build_shards(dataclasses.replace(relative, output="spark", engine="spark"))
    finally:
        hadoop.set("fs.defaultFS", previous)
    assert on_spark["units_run"] == local["units_run"] == 18  # 4 + 5 row groups, 9 JSONL lines at unit_bytes=1
    assert tree_bytes(driver / "spark") == tree_bytes(driver / "local")
