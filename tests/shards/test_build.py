"""Building shards: readable by StreamingDataset, lossless, deterministic across workers, resumable."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from llmfoundry_lite.corpus.readers import iter_documents, list_input_shards
from llmfoundry_lite.corpus.units import plan_units
from llmfoundry_lite.shards import build as build_mod
from llmfoundry_lite.shards.build import build_shards
from llmfoundry_lite.shards.pack import split_key, split_of
from llmfoundry_lite.spark_session import attempt_tmp
from llmfoundry_lite.tokenizer import load_tokenizer

from .conftest import ASSET_TOKENIZER, shard_cfg, tree_bytes


def _read_split(folder: Path) -> np.ndarray:
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    ds = StreamingDataset(local=str(folder), shuffle=False, batch_size=1)
    samples = [ds[i]["tokens"] for i in range(len(ds))]
    assert all(s.dtype == np.uint16 and s.shape == (64,) for s in samples)  # a 1024-id vocabulary fits uint16
    return np.stack(samples)


def _docs_in_order(corpus: Path, split: str) -> list[str]:
    docs = [d for s in list_input_shards([str(corpus)]) for d in iter_documents(s, Counter())]
    return [d["content"] for d in docs if split_of(split_key(d, "repository"), 0, 0.25) == split]


@pytest.mark.parametrize("split", ["train", "val"])
def test_shards_hold_every_document_exactly_once(corpus_dir, tmp_path, split):
    m = build_shards(shard_cfg(corpus_dir, tmp_path / "shards"))
    samples = _read_split(tmp_path / "shards" / split)
    assert len(samples) == m["splits"][split]["samples"]
    stream = samples.reshape(-1)
    stream = stream[stream != m["pad_id"]]  # pads only close a unit's last sample
    assert (stream == 0).sum() == m["splits"][split]["docs"]
    tok = load_tokenizer(ASSET_TOKENIZER)
    pieces = np.split(stream, np.flatnonzero(stream == 0) + 1)[:-1]
    decoded = [tok.decode(p[:-1].tolist()) for p in pieces]
    assert decoded == _docs_in_order(corpus_dir, split)


def test_manifest_describes_the_shards(corpus_dir, tmp_path):
    m = build_shards(shard_cfg(corpus_dir, tmp_path / "shards"))
    on_disk = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert on_disk["vocab_size"] == 1024 and on_disk["max_seq_len"] == 64
    assert (on_disk["eos_id"], on_disk["pad_id"]) == (0, 1)
    assert on_disk["units"] == 4 + 5 + 9  # unit_bytes=1: one per row group (20 rows / 6, 17 rows / 4), per JSONL line
    assert m["splits"]["train"]["docs"] + m["splits"]["val"]["docs"] == 46
    assert on_disk["columns"] == {"tokens": "ndarray:uint16:64"}
    assert on_disk["split_rule"]["split_by"] == "repository" and "repository_name" in on_disk["split_rule"]["rule"]
    assert "workers" not in on_disk["source_config"]


def test_byte_identical_for_1_2_4_workers(corpus_dir, tmp_path):
    trees = []
    for w in (1, 2, 4):
        build_shards(shard_cfg(corpus_dir, tmp_path / f"w{w}", workers=w))
        trees.append(tree_bytes(tmp_path / f"w{w}"))
    assert trees[0] == trees[1] == trees[2]
    assert sum(name.endswith(".mds.zstd") for name in trees[0]) >= 9


def test_resume_after_crash_redoes_only_unfinished_units(corpus_dir, tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    build_shards(shard_cfg(corpus_dir, clean))
    out = tmp_path / "crashed"
    real = build_mod.write_unit
    calls = []

    def crash_on_fourth(unit, cfg):
        calls.append(unit.name)
        if len(calls) == 4:
            half = attempt_tmp(out / "train" / unit.name)  # where a killed attempt was writing
            half.mkdir(parents=True)
            (half / "shard.00000.mds").write_bytes(b"half written")
            raise KeyboardInterrupt("killed")
        return real(unit, cfg)

    monkeypatch.setattr(build_mod, "write_unit", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        build_shards(shard_cfg(corpus_dir, out))
    assert not (out / "manifest.json").exists()
    # A unit renamed into place whose completion record was never written must be redone too.
    sixth = plan_units([str(corpus_dir)], 1)[5].name
    shutil.copytree(clean / "train" / sixth, out / "train" / sixth)
    monkeypatch.setattr(build_mod, "write_unit", real)
    m = build_shards(shard_cfg(corpus_dir, out))
    assert m["units_run"] == 18 - 3 and m["reused"] is False
    assert tree_bytes(out) == tree_bytes(clean)


def test_rerun_reuses_and_config_change_rebuilds(corpus_dir, tmp_path):
    first = build_shards(shard_cfg(corpus_dir, tmp_path / "s"))
    again = build_shards(shard_cfg(corpus_dir, tmp_path / "s", workers=2))
    assert again["reused"] is True and again["fingerprint"] == first["fingerprint"]
    changed = build_shards(shard_cfg(corpus_dir, tmp_path / "s", max_seq_len=32))
    assert changed["reused"] is False and changed["units_run"] == 18
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["max_seq_len"] == 32


def test_drop_remainder_writes_no_pad(corpus_dir, tmp_path):
    m = build_shards(shard_cfg(corpus_dir, tmp_path / "s", remainder="drop"))
    samples = _read_split(tmp_path / "s" / "train")
    assert (samples == 1).sum() == 0 and m["splits"]["train"]["dropped_tokens"] > 0
    assert m["splits"]["train"]["samples"] * 64 + m["splits"]["train"]["dropped_tokens"] == m["splits"]["train"]["tokens"]


def test_literal_special_text_is_caught_if_tokenizer_is_misloaded(corpus_dir, tmp_path, monkeypatch):
    from tokenizers import Tokenizer

    from llmfoundry_lite.shards import writer

    monkeypatch.setattr(writer, "load_tokenizer", lambda d: Tokenizer.from_file(str(Path(d) / "tokenizer.json")))
    with pytest.raises(RuntimeError, match="encoded to special id 2"):
        build_shards(shard_cfg(corpus_dir, tmp_path / "s"))


def test_null_content_rows_are_counted_not_lost(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    corpus = tmp_path / "c"
    corpus.mkdir()
    rows = [{"id": f"d{i}", "content": None if i % 3 == 0 else f"x = {i}\n", "path": "a.py"} for i in range(12)]
    rows[4]["content"] = ""
    pq.write_table(pa.Table.from_pylist(rows), corpus / "a.parquet")
    m = build_shards(shard_cfg(corpus, tmp_path / "s", val_fraction=0.0))
    assert m["skips"]["null_content"] == 4 and sum(m["skips"].values()) == 5  # + one empty document
    assert m["splits"]["train"]["docs"] == 7 and m["splits"]["val"]["docs"] == 0
