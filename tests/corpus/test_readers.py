import gzip
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.corpus.readers import InputError, iter_documents, list_input_shards


def _all(paths):
    skips = Counter()
    docs = [d for s in list_input_shards([str(p) for p in paths]) for d in iter_documents(s, skips)]
    return docs, skips


def test_real_stack_column_names_are_mapped(tmp_path):
    d = tmp_path / "data" / "python"
    d.mkdir(parents=True)
    table = pa.table({
        "hexsha": ["abc"], "content": ["print(1)\n"], "max_stars_repo_path": ["src/a.py"],
        "max_stars_repo_name": ["o/r"], "lang": ["Python"], "ext": ["py"], "avg_line_length": [8.0],
        "max_stars_repo_licenses": [["MIT", "Apache-2.0"]],
    })
    pq.write_table(table, d / "train-00000-of-00001.parquet")
    docs, skips = _all([tmp_path / "data"])
    assert docs == [{"id": "abc", "content": "print(1)\n", "path": "src/a.py", "lang": "Python",
                     "repository_name": "o/r", "size": 9, "ext": "py", "row": 0, "licenses": ["MIT", "Apache-2.0"]}]
    assert not skips


def test_parquet_missing_content_names_file_and_column(tmp_path):
    p = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": ["x"], "path": ["a.py"]}), p)
    with pytest.raises(InputError, match=r"bad\.parquet: missing column 'content' \(found: path, text\)"):
        _all([p])


def test_truncated_parquet_is_input_error(tmp_path):
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"content": ["x = 1\n"] * 100, "path": ["a.py"] * 100}), p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(InputError, match="t.parquet: not a readable Parquet file"):
        _all([p])


def test_jsonl_gz_counts_bad_lines_and_derives_lang(tmp_path):
    p = tmp_path / "docs.jsonl.gz"
    lines = [json.dumps({"content": "int x;\n", "path": "a.c"}), "{not json", json.dumps([1, 2]),
             json.dumps({"content": None, "path": "b.c"}), "", json.dumps({"content": "y = 1\n", "path": "b.py", "id": 7})]
    with gzip.open(p, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    docs, skips = _all([p])
    assert [(d["lang"], d["path"]) for d in docs] == [("C", "a.c"), ("Python", "b.py")]
    assert docs[1]["id"] == "7"
    assert skips == Counter(bad_json_line=1, json_not_object=1, null_content=1)


def test_jsonl_without_content_is_input_error(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"text": "a", "path": "a.py"}) + "\n")
    with pytest.raises(InputError, match=r"x\.jsonl line 1: missing column 'content'"):
        _all([p])


def test_source_directory(tiny_tree):
    docs, skips = _all([tiny_tree])
    assert {d["path"] for d in docs} >= {"pkg/mod.py", "pkg/run", "pkg/big.py"}
    assert skips["binary"] == 1 and skips["non_utf8"] == 1 and skips["empty"] == 1


def test_missing_input_and_plain_file(tmp_path):
    with pytest.raises(InputError, match="input not found"):
        list_input_shards([str(tmp_path / "nope")])
    f = tmp_path / "a.py"
    f.write_text("x\n")
    with pytest.raises(InputError, match="not a Parquet or JSONL"):
        list_input_shards([str(f)])


def test_jsonl_invalid_utf8_binary_and_surrogates_are_counted_per_record(tmp_path):
    p = tmp_path / "mixed.jsonl"
    p.write_bytes(b"\n".join([
        b'{"content": "ok = 1\\n", "path": "a.py"}',
        b'{"content": "caf\xe9", "path": "b.py"}',
        b'{"content": "int x;\\u0000", "path": "c.c"}',
        b'{"content": "\\ud800", "path": "d.py"}',
        b'{"content": " \\n\\t", "path": "e.py"}',
    ]) + b"\n")
    docs, skips = _all([p])
    assert [d["path"] for d in docs] == ["a.py"]
    assert skips == Counter(non_utf8=2, binary=1, empty=1)


def test_check_schema_reads_only_what_it_needs(tmp_path):
    from llmfoundry_lite.corpus.readers import InputShard, check_schema

    good = tmp_path / "g.jsonl"
    good.write_text("garbage\n" + json.dumps({"content": "x", "lang": "Python"}) + "\n")
    check_schema(InputShard(str(good), "jsonl"))
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps({"text": "x", "path": "a.py"}) + "\n")
    with pytest.raises(InputError, match=r"b\.jsonl line 1: missing column 'content'"):
        check_schema(InputShard(str(bad), "jsonl"))
    nopath = tmp_path / "n.parquet"
    pq.write_table(pa.table({"content": ["x"]}), nopath)
    with pytest.raises(InputError, match=r"n\.parquet: needs a 'path' or 'lang' column"):
        check_schema(InputShard(str(nopath), "parquet"))
