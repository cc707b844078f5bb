"""Two attempts of one pass-1 unit at once (speculation, a zombie): neither writes into the other's file."""

import numpy as np
import pyarrow.parquet as pq

from llmfoundry_lite.corpus.identity import file_identity
from llmfoundry_lite.corpus.readers import list_input_shards
from llmfoundry_lite.corpus.units import plan_units
from llmfoundry_lite.filtering.pipeline import run_filter
from llmfoundry_lite.filtering.shards import filter_shard
from tests.overlapping_attempts import run_overlapping


def test_two_attempts_of_one_unit_at_once_both_finish_and_leave_whole_files(filter_cfg, filter_corpus, tmp_path):
    run_filter(filter_cfg(output=str(tmp_path / "ref"), batch_rows=1), progress=False)
    cfg = filter_cfg(output=str(tmp_path / "out"), batch_rows=1)  # a flush after every row: A pauses mid-file
    shards = list_input_shards([str(filter_corpus)])
    identities = {s.path: file_identity(s) for s in shards}
    unit = plan_units([str(filter_corpus)], cfg.unit_bytes, identities)[0]
    work = tmp_path / "out" / "work"
    (work / "pass1").mkdir(parents=True)
    a, b, _ = run_overlapping(filter_shard, (0, unit, identities[unit.shard.path], cfg, str(work), {}),
                              "llmfoundry_lite.filtering.records.BatchWriter.flush", "writer", tmp_path / "attempts")
    assert b.returncode == 0, b.stdout[-3000:]
    assert a.returncode == 0, a.stdout[-3000:]
    ref = tmp_path / "ref" / "work" / "pass1"
    assert pq.read_table(work / "pass1" / f"{unit.name}.parquet").equals(pq.read_table(ref / f"{unit.name}.parquet"))
    for suffix in ("sig.npy", "row.npy"):
        assert np.array_equal(np.load(work / "pass1" / f"{unit.name}.{suffix}"), np.load(ref / f"{unit.name}.{suffix}"))
    assert not list((work / "pass1").glob(".*.tmp"))
