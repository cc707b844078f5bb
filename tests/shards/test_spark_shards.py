"""The shard stage on Spark writes the same bytes as the local engine."""

import pytest

from llmfoundry_lite.shards.build import build_shards

from .conftest import shard_cfg, tree_bytes


@pytest.mark.slow
def test_spark_units_are_byte_identical_to_local(corpus_dir, tmp_path, spark):
    local = build_shards(shard_cfg(corpus_dir, tmp_path / "local", workers=2))
    on_spark = build_shards(shard_cfg(corpus_dir, tmp_path / "spark", engine="spark"))
    assert on_spark["units_run"] == local["units_run"] == 10
    assert tree_bytes(tmp_path / "spark") == tree_bytes(tmp_path / "local")
    assert not spark.sparkContext._jsc.sc().isStopped()
