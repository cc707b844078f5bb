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
