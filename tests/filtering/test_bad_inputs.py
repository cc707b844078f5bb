"""Bad input: unusable files stop the run naming the file; bad records are counted skips."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.corpus.readers import InputError
from llmfoundry_lite.filtering.pipeline import run_filter


def test_wrong_columns_stop_before_any_work(filter_cfg, tmp_path):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": ["x"], "path": ["a.py"]}), bad)
    cfg = filter_cfg(input=[str(tmp_path / "in"), str(bad)])
    with pytest.raises(InputError, match=r"bad\.parquet: missing column 'content' \(found: path, text\)"):
        run_filter(cfg, progress=False)
    assert not (tmp_path / "out").exists()


def test_corrupt_and_truncated_parquet_name_the_file(filter_cfg, tmp_path):
    good = tmp_path / "t.parquet"
    pq.write_table(pa.table({"content": ["x = 1\n"] * 50, "path": ["a.py"] * 50}), good)
    good.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError, match=r"t\.parquet: not a readable Parquet file"):
        run_filter(filter_cfg(input=[str(good)]), progress=False)


def test_truncated_gzip_jsonl_names_the_file(filter_cfg, tmp_path):
    p = tmp_path / "docs.jsonl.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("".join(json.dumps({"content": f"x = {i}\n", "path": f"{i}.py"}) + "\n" for i in range(300)))
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(InputError, match=r"docs\.jsonl\.gz: unreadable JSONL near line"):
        run_filter(filter_cfg(input=[str(p)]), progress=False)


def test_bad_records_are_counted_skips(filter_cfg, tmp_path):
    p = tmp_path / "mixed.jsonl"
    lines = [json.dumps({"content": "x = 1\n", "path": "ok.py"}).encode(),
             b'{"content": "caf\xe9 = 1", "path": "latin1.py"}',  # invalid UTF-8 bytes
             json.dumps({"content": "int x;\u0000\u0001", "path": "bin.c"}).encode(),  # binary content
             json.dumps({"content": "", "path": "empty.py"}).encode(),
             json.dumps({"content": "\ud800 lone surrogate", "path": "s.py"}).encode(),
             b"this line is not json",
             json.dumps(["not", "an", "object"]).encode()]
    p.write_bytes(b"\n".join(lines) + b"\n")
    stats = run_filter(filter_cfg(input=[str(p)]), progress=False)
    assert stats["skipped_by_reason"] == {"non_utf8": 2, "binary": 1, "empty": 1, "bad_json_line": 1,
                                          "json_not_object": 1}
    assert (stats["seen"], stats["kept"], stats["rejected"], stats["skipped"]) == (7, 1, 0, 6)


def test_empty_files_and_a_100mb_single_line_file(filter_cfg, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "empty.py").write_text("")
    (src / "huge.js").write_bytes(b"var x = '" + b"a" * 100_000_000 + b"';")
    (src / "fine.py").write_text("def f():\n    return 1\n")
    (tmp_path / "empty.jsonl").write_text("")
    stats = run_filter(filter_cfg(input=[str(src), str(tmp_path / "empty.jsonl")]), progress=False)
    assert stats["rejected_by_reason"] == {"too_large": 1}
    assert stats["skipped_by_reason"] == {"empty": 1}
    assert (stats["seen"], stats["kept"]) == (3, 1)
    row = pq.read_table(tmp_path / "out" / "rejected" / "part-00000.parquet", columns=["path", "size", "max_line_length"])
    assert row.to_pylist() == [{"path": "huge.js", "size": 100_000_011, "max_line_length": 100_000_011}]
