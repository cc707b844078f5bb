"""A shard build killed with SIGKILL mid-run resumes to the same bytes as an uninterrupted build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.shards.build import build_shards

from .conftest import make_docs, shard_cfg, tree_bytes

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # a fresh interpreter imports streaming (and torch) before the first unit
def test_sigkill_then_rerun_matches_clean_build(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pq.write_table(pa.Table.from_pylist(make_docs(80)), corpus / "docs.parquet", row_group_size=2)
    out = tmp_path / "killed"
    cfg_kw = {"unit_bytes": 1, "val_fraction": 0.25}
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from tests.shards.conftest import shard_cfg; from llmfoundry_lite.shards.build import build_shards; "
        f"build_shards(shard_cfg(Path(sys.argv[2]), Path(sys.argv[3]), **{cfg_kw!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(corpus), str(out)], start_new_session=True)
    records = out / ".units"
    deadline = time.monotonic() + 120
    while len(list(records.glob("unit-*.json"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before_kill = len(list(records.glob("unit-*.json")))
    assert 3 <= finished_before_kill < 40 and not (out / "manifest.json").exists()

    resumed = build_shards(shard_cfg(corpus, out, **cfg_kw))
    assert resumed["units_run"] == 40 - finished_before_kill
    build_shards(shard_cfg(corpus, tmp_path / "clean", **cfg_kw))
    assert tree_bytes(out) == tree_bytes(tmp_path / "clean")
    assert json.loads((out / "manifest.json").read_text())["units"] == 40
