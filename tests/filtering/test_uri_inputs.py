"""The filter reads remote (fsspec) and ``file://`` inputs and writes to ``file://`` outputs like local paths."""

import pyarrow.parquet as pq

from llmfoundry_lite.filtering.pipeline import run_filter


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
