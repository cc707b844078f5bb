"""The filter reads remote (fsspec) and ``file://`` inputs and writes to ``file://`` outputs like local paths;
a remote input is identified from its store's version fields and read twice per run (passes 1 and 3)."""

import hashlib
import io
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq

from llmfoundry_lite.filtering.pipeline import run_filter
from tests.corpus.versioned_store import HfStore, install
from tests.filtering.stack_rows import module


def test_filter_reads_remote_and_file_uris_like_local_paths(memory_corpus, filter_cfg, tmp_path):
    remote = run_filter(filter_cfg(input=["memory://bucket/stack"], output=f"file://{tmp_path}/remote"), progress=False)
    assert remote["seen"] == 7 and remote["kept"] == 7 and (tmp_path / "remote" / "stats.json").exists()
    local = tmp_path / "copy"
    for name in ["data-0.parquet", "data-1.parquet", "extra.jsonl"]:
        (local / "stack").mkdir(parents=True, exist_ok=True)
        (local / "stack" / name).write_bytes(memory_corpus.cat(f"/bucket/stack/{name}"))
    on_disk = run_filter(filter_cfg(input=[f"file://{local}/stack"], output=str(tmp_path / "local")), progress=False)
    drop = ("config_hash", "inputs_key")
    assert {k: v for k, v in on_disk.items() if k not in drop} == {k: v for k, v in remote.items() if k not in drop}
    kept = pq.read_table(tmp_path / "remote" / "kept" / "part-00002.parquet").to_pylist()
    assert kept[0]["stars"] == 4


def test_object_store_output_is_published_byte_identical_to_a_local_run(memory_corpus, filter_cfg, tmp_path):
    local = run_filter(filter_cfg(output=str(tmp_path / "local")), progress=False)
    cfg = filter_cfg(output="memory://bucket/filtered", staging=str(tmp_path / "stage"))
    remote = run_filter(cfg, progress=False)
    assert remote.pop("published")["uploaded"] == 7 and remote == local
    published = {p[len("/bucket/filtered/"):]: memory_corpus.cat(p) for p in memory_corpus.find("/bucket/filtered")}
    on_disk = {str(p.relative_to(tmp_path / "local")): p.read_bytes()
               for p in sorted((tmp_path / "local").rglob("*")) if p.is_file() and "work" not in p.parts}
    assert published.pop("_published.json")
    assert b"output: memory://bucket/filtered" in published.pop("filter_config.yaml")
    on_disk.pop("filter_config.yaml")
    assert published == on_disk
    assert not any(k.startswith("work/") for k in published)  # resumable state stays in staging
    again = run_filter(cfg, progress=False)  # finished in staging: nothing is recomputed or re-uploaded
    assert again.pop("published") == {"uploaded": 0, "unchanged": 7, "deleted": 0} and again == remote
    assert {p: memory_corpus.cat(p) for p in memory_corpus.find("/bucket/filtered")}.keys() == {
        f"/bucket/filtered/{k}" for k in [*published, "filter_config.yaml", "_published.json"]}


def _hub_dataset(hub, versions: bool) -> list[str]:
    """Two Parquet files and a JSONL file of ~800 KB each on the fake Hub: a small module plus four 200 KB lines."""
    rng = random.Random(0)
    paths = []
    for name in ["data-0.parquet", "data-1.parquet", "extra.jsonl"]:
        rows = [{"content": module(len(paths)), "path": f"m{len(paths)}.py"}]
        rows += [{"content": rng.randbytes(100_000).hex() + "\n", "path": f"blob{j}.py"} for j in range(4)]
        if name.endswith(".parquet"):
            buf = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(rows), buf)
            data = buf.getvalue()
        else:
            data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        path = f"/datasets/org/stack/{name}"
        fields = {"blob_id": hashlib.sha1(data).hexdigest(),
                  "lfs": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointer_size": 132}}
        hub.put_object(path, data, **(fields if versions else {}))
        paths.append(path)
    return paths


def test_hub_inputs_are_identified_from_metadata_and_read_twice_per_run(monkeypatch, filter_cfg):
    hub = install(monkeypatch, HfStore)
    paths = _hub_dataset(hub, versions=True)
    cfg = filter_cfg(input=["hf://datasets/org/stack"])
    first = run_filter(cfg, progress=False)
    assert first["seen"] == 15 and first["kept"] == 3
    # Whole-object reads: pass 1 and pass 3, nothing to identify or check an input. Probes read a Parquet
    # footer (schema check, unit plan, carried columns) or a JSONL file's first line (schema check).
    assert {p: hub.content_reads(p) for p in paths} == dict.fromkeys(paths, 2)
    assert all(hub.probes(p) <= (3 if p.endswith(".parquet") else 1) for p in paths)  # today: 3, 3, 1
    hub.reads.clear()
    assert run_filter(cfg, progress=False) == first  # finished: identities match from metadata, no content read
    assert {p: hub.content_reads(p) for p in paths} == dict.fromkeys(paths, 0)
    hub.versions[paths[2]]["blob_id"] = "f" * 40  # a new version (same test bytes: only metadata can tell): redone
    hub.reads.clear()
    again = run_filter(cfg, progress=False)
    assert again["inputs_key"] != first["inputs_key"]
    assert {p: hub.content_reads(p) for p in paths} == {paths[0]: 0, paths[1]: 0, paths[2]: 2}


def test_hub_input_without_version_fields_is_hashed_once_per_run(monkeypatch, filter_cfg):
    hub = install(monkeypatch, HfStore)
    paths = _hub_dataset(hub, versions=False)
    stats = run_filter(filter_cfg(input=["hf://datasets/org/stack"]), progress=False)
    assert stats["seen"] == 15
    assert {p: hub.content_reads(p) for p in paths} == dict.fromkeys(paths, 3)  # hashed once, then passes 1 and 3
