"""Shards follow their inputs exactly: split by repository, units by row group, no stale unit reused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from llmfoundry_lite.corpus.units import plan_units
from llmfoundry_lite.shards.build import build_shards
from llmfoundry_lite.shards.pack import split_key, split_of

from .conftest import make_docs, shard_cfg, tree_bytes


def _write(path: Path, docs: list[dict], group: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(docs), path, row_group_size=group)


def _with_repos(docs: list[dict], repos: int) -> list[dict]:
    return [{**d, "repository_name": f"org/repo{i % repos}"} for i, d in enumerate(docs)]


def test_files_of_one_repository_never_land_on_both_sides(tmp_path):
    docs = _with_repos(make_docs(60), repos=12) + make_docs(8, offset=60)  # the last 8 have no repository
    _write(tmp_path / "c" / "a.parquet", docs)
    m = build_shards(shard_cfg(tmp_path / "c", tmp_path / "s", val_fraction=0.3))
    sides: dict[str, set[str]] = {}
    for d in docs:
        key = split_key(d, "repository")
        sides.setdefault(d.get("repository_name") or d["content"], set()).add(split_of(key, 0, 0.3))
    assert all(len(s) == 1 for s in sides.values())
    val_repos = {r for r, s in sides.items() if r.startswith("org/") and s == {"val"}}
    assert 0 < len(val_repos) < 12 and m["splits"]["val"]["docs"] > 0
    assert m["split_rule"]["split_by"] == "repository"
    by_content = build_shards(shard_cfg(tmp_path / "c", tmp_path / "s2", val_fraction=0.3, split_by="content"))
    assert by_content["splits"]["val"]["docs"] != m["splits"]["val"]["docs"]


def test_units_are_whole_row_groups_up_to_unit_bytes(tmp_path):
    _write(tmp_path / "c" / "a.parquet", make_docs(40), group=5)  # 8 row groups
    groups = pq.ParquetFile(tmp_path / "c" / "a.parquet").metadata
    sizes = [groups.row_group(g).total_byte_size for g in range(groups.num_row_groups)]
    one_each = plan_units([str(tmp_path / "c")], 1)
    assert [u.groups for u in one_each] == [(g,) for g in range(8)]
    pairs = plan_units([str(tmp_path / "c")], sizes[0] + sizes[1])
    assert all(len(u.groups) <= 3 for u in pairs) and sum(len(u.groups) for u in pairs) == 8
    assert [(u.start, u.stop) for u in pairs][0][0] == 0 and pairs[-1].stop == 40
    whole = plan_units([str(tmp_path / "c")], 1 << 40)
    assert len(whole) == 1 and whole[0].groups == tuple(range(8))


def test_uint16_tokens_take_half_the_bytes_of_int32(tmp_path, monkeypatch):
    from llmfoundry_lite.shards import writer

    _write(tmp_path / "c" / "a.parquet", make_docs(200))
    kw = {"val_fraction": 0.0, "compression": "", "max_seq_len": 512, "unit_bytes": 1 << 30}
    m = build_shards(shard_cfg(tmp_path / "c", tmp_path / "s16", **kw))
    assert m["columns"] == {"tokens": "ndarray:uint16:512"}
    monkeypatch.setattr(writer, "token_dtype", lambda vocab_size: "int32")
    build_shards(shard_cfg(tmp_path / "c", tmp_path / "s32", **kw))
    raw16, raw32 = (sum(f.stat().st_size for f in (tmp_path / d / "train").rglob("*.mds")) for d in ("s16", "s32"))
    assert 0.49 < raw16 / raw32 < 0.52  # only the shard header and sample offsets are not halved


def test_added_removed_replaced_inputs_redo_exactly_their_units(tmp_path):
    corpus, out = tmp_path / "c", tmp_path / "s"
    _write(corpus / "a.parquet", make_docs(20))
    _write(corpus / "b.parquet", make_docs(12, offset=20))
    first = build_shards(shard_cfg(corpus, out))
    assert first["units_run"] == 5 + 3

    def fresh(name: str) -> dict[str, bytes]:
        build_shards(shard_cfg(corpus, tmp_path / name))
        return tree_bytes(tmp_path / name)

    _write(corpus / "c.parquet", make_docs(8, offset=40))
    added = build_shards(shard_cfg(corpus, out))
    assert added["units_run"] == 2 and added["splits"]["train"]["docs"] + added["splits"]["val"]["docs"] == 40
    assert tree_bytes(out) == fresh("fresh-abc")

    time.sleep(0.01)
    _write(corpus / "b.parquet", make_docs(16, offset=100))  # replaced: 16 rows instead of 12
    replaced = build_shards(shard_cfg(corpus, out))
    assert replaced["units_run"] == 4 and replaced["splits"]["train"]["docs"] + replaced["splits"]["val"]["docs"] == 44
    assert tree_bytes(out) == fresh("fresh-ab16c")

    (corpus / "a.parquet").unlink()
    removed = build_shards(shard_cfg(corpus, out))
    assert removed["units_run"] == 0 and removed["reused"] is False and removed["units"] == 4 + 2
    assert tree_bytes(out) == fresh("fresh-b16c")
    assert json.loads((out / "manifest.json").read_text())["splits"]["train"]["docs"] + \
        removed["splits"]["val"]["docs"] == 24


def test_object_store_output_is_published_byte_identical_to_a_local_build(tmp_path):
    import fsspec

    from llmfoundry_lite.shards.writer import UNITS_DIR

    _write(tmp_path / "c" / "a.parquet", _with_repos(make_docs(40), repos=6))
    local = build_shards(shard_cfg(tmp_path / "c", tmp_path / "local"))
    fs = fsspec.filesystem("memory")
    try:
        remote = build_shards(shard_cfg(tmp_path / "c", "memory://bucket/shards", staging=str(tmp_path / "stage")))
        assert remote["published"]["uploaded"] > 2 and remote["splits"] == local["splits"]
        published = {p[len("/bucket/shards/"):]: fs.cat(p) for p in fs.find("/bucket/shards")}
        published.pop("_published.json")
        expected = {k: v for k, v in tree_bytes(tmp_path / "local").items() if not k.startswith(UNITS_DIR)}
        assert published == expected
        again = build_shards(shard_cfg(tmp_path / "c", "memory://bucket/shards", staging=str(tmp_path / "stage")))
        assert again["reused"] and again["published"] == {"uploaded": 0, "unchanged": len(expected), "deleted": 0}
    finally:
        fs.rm("/bucket/shards", recursive=True)
