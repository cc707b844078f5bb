"""The Spark engine (pyspark local[2]) keeps exactly what the local engine keeps. One short test."""

import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.filtering.pipeline import run_filter


@pytest.mark.slow
def test_spark_engine_matches_local_engine(filter_cfg, tmp_path):
    local = run_filter(filter_cfg(output=str(tmp_path / "local")), progress=False)
    spark = run_filter(filter_cfg(output=str(tmp_path / "spark"), engine="spark", spark_master="local[2]"),
                       progress=False)
    assert spark == local
    for sub in ("kept", "rejected"):
        for f in sorted((tmp_path / "local" / sub).glob("*.parquet")):
            assert pq.read_table(f).equals(pq.read_table(tmp_path / "spark" / sub / f.name))
    assert local["rejected_by_reason"]["near_duplicate"] == 1
