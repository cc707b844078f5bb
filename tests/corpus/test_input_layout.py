"""Which directories are tables and which are source trees: a repository with table fixtures is source."""

import json
from collections import Counter

import pytest

from llmfoundry_lite.corpus.readers import InputError, InputShard, iter_documents, list_input_shards
from llmfoundry_lite.corpus.units import plan_units
from tests.corpus.versioned_store import S3Store, install
from tests.filtering.stack_rows import module, stack_row, write_stack


@pytest.fixture
def repo(tmp_path):
    """A repository: two modules, a JSONL and a Parquet test fixture that are valid Stack tables themselves."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "app.py").write_text(module(1))
    (root / "pkg" / "util.py").write_text(module(2))
    (root / "tests" / "fixtures").mkdir(parents=True)
    (root / "tests" / "fixtures" / "data.jsonl").write_text(json.dumps({"content": module(3), "path": "x.py"}) + "\n")
    write_stack(root / "tests" / "fixtures" / "rows.parquet", [stack_row("y.py", module(4))])
    return root


@pytest.fixture
def tables(tmp_path):
    """A table directory as Spark, the Hub and our local corpus leave it: tables, markers, hidden files, a dataset
    card, a manifest."""
    root = tmp_path / "stack"
    write_stack(root / "lang=python" / "part-0.parquet", [stack_row("a.py", module(5))])
    (root / "lang=go").mkdir()
    (root / "lang=go" / "part-1.jsonl").write_text(json.dumps({"content": module(6), "path": "b.go"}) + "\n")
    write_stack(root / "_temporary" / "0" / "part-0.parquet", [stack_row("half.py", module(7))])  # a task still writing
    for marker in ["_SUCCESS", ".part-0.parquet.crc", ".gitattributes", "README.md", "manifest.json"]:
        (root / marker).write_text("x\n")
    return root


def test_repository_with_table_fixtures_is_read_as_source(repo):
    assert list_input_shards([str(repo)]) == [InputShard(str(repo), "source_dir")]
    skips: Counter = Counter()
    docs = list(iter_documents(list_input_shards([str(repo)])[0], skips))
    assert [d["path"] for d in docs] == ["pkg/app.py", "pkg/util.py"]
    assert skips == {"unknown_language": 2}  # the fixtures are files of the tree, in no source language


def test_directory_of_only_tables_is_a_table_directory(tables):
    shards = list_input_shards([str(tables)])
    assert shards == [InputShard(str(tables / "lang=go" / "part-1.jsonl"), "jsonl"),
                      InputShard(str(tables / "lang=python" / "part-0.parquet"), "parquet")]
    (tables / "lang=go" / "notes.txt").write_text("one file of another kind makes it a source tree\n")
    assert list_input_shards([str(tables)]) == [InputShard(str(tables), "source_dir")]


def test_explicit_layout_overrides_auto(repo, tables):
    fixtures = [InputShard(str(repo / "tests" / "fixtures" / "data.jsonl"), "jsonl"),
                InputShard(str(repo / "tests" / "fixtures" / "rows.parquet"), "parquet")]
    assert list_input_shards([str(repo)], layout="table") == fixtures
    assert [u.shard for u in plan_units([str(repo)], 1 << 20, layout="table")] == fixtures
    assert list_input_shards([str(tables)], layout="source") == [InputShard(str(tables), "source_dir")]
    (repo / "tests" / "fixtures" / "data.jsonl").unlink()
    (repo / "tests" / "fixtures" / "rows.parquet").unlink()
    with pytest.raises(InputError, match="layout=table, but no Parquet or JSONL"):
        list_input_shards([str(repo)], layout="table")
    with pytest.raises(ValueError, match=r"unknown input layout 'tables'; choose from \['auto', 'table', 'source'\]"):
        list_input_shards([str(repo)], layout="tables")


def test_remote_prefix_follows_the_same_rule_and_is_never_a_source_tree(monkeypatch):
    s3 = install(monkeypatch, S3Store)
    row = (json.dumps({"content": module(8), "path": "c.py"}) + "\n").encode()
    for path in ["/bucket/stack/a.jsonl", "/bucket/stack/_temporary/0/a.jsonl", "/bucket/stack/_SUCCESS",
                 "/bucket/stack/README.md"]:
        s3.put_object(path, row)
    assert list_input_shards(["s3://bucket/stack"]) == [InputShard("s3://bucket/stack/a.jsonl", "jsonl")]
    s3.put_object("/bucket/stack/loader.py", b"import datasets\n")
    with pytest.raises(InputError, match="files of other kinds beside them .a source tree; source trees must be local"):
        list_input_shards(["s3://bucket/stack"])
    assert list_input_shards(["s3://bucket/stack"], layout="table") == [InputShard("s3://bucket/stack/a.jsonl", "jsonl")]
    with pytest.raises(InputError, match="layout=source, but source trees must be local"):
        list_input_shards(["s3://bucket/stack"], layout="source")
