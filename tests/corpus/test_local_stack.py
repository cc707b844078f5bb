import json

import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.config import load_config
from llmfoundry_lite.corpus.local_stack import STACK_SCHEMA_COLUMNS, LocalStackConfig, build_local_stack, format_summary


def _build(tmp_path, roots, out="out", **kw):
    cfg = load_config(LocalStackConfig, None, [f"output={tmp_path / out}"], flags={"roots": [str(r) for r in roots], **kw})
    return cfg, build_local_stack(cfg, progress=False)


def _rows(out):
    return pq.read_table(sorted(out.glob("*.parquet"))).to_pylist()


def test_builds_stack_columns_and_counts_skips(tmp_path, tiny_tree):
    cfg, manifest = _build(tmp_path, [tiny_tree], max_file_bytes=1000)
    rows = _rows(tmp_path / "out")
    assert pq.read_schema(tmp_path / "out" / manifest["shards"][0]).names == list(STACK_SCHEMA_COLUMNS)
    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == {"tree/pkg/mod.py", "tree/pkg/sub/util.h", "tree/pkg/run", "tree/pkg/tool",
                            "tree/pkg/app.js", "tree/pkg/bom.py"}
    assert by_path["tree/pkg/run"]["lang"] == "Shell"
    assert by_path["tree/pkg/tool"]["lang"] == "Python"
    assert by_path["tree/pkg/sub/util.h"]["lang"] == "C"
    assert by_path["tree/pkg/bom.py"]["content"] == "y = 2\n"  # BOM dropped
    assert by_path["tree/pkg/mod.py"]["repository_name"] == "tree/pkg"
    assert by_path["tree/pkg/mod.py"]["ext"] == "py"
    assert all(r["size"] == len(r["content"].encode()) for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert manifest["skipped"] == {"binary": 1, "empty": 1, "non_utf8": 1, "not_regular_file": 1,
                                   "too_large": 1, "unknown_language": 1}
    assert manifest["files"] == 6 and manifest["languages"]["Python"]["files"] == 3
    assert "Python" in format_summary(manifest)


def test_same_input_gives_byte_identical_files(tmp_path, tiny_tree):
    _build(tmp_path, [tiny_tree], out="a")
    _build(tmp_path, [tiny_tree], out="b")
    files_a = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files_a == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_size_budget_bounds_output_and_counts_rest(tmp_path, tiny_tree):
    _, manifest = _build(tmp_path, [tiny_tree], max_total_bytes=60)
    assert 0 < manifest["bytes"] <= 60
    assert manifest["skipped"]["over_budget"] >= 1
    seen = manifest["files"] + sum(manifest["skipped"].get(k, 0) for k in ("binary", "empty", "non_utf8", "over_budget", "too_large"))
    assert seen == manifest["candidates"]


def test_language_filter_and_zip_root(tmp_path, tiny_tree, tiny_zip):
    _, manifest = _build(tmp_path, [tiny_tree, tiny_zip], languages=["Java", "C"])
    rows = _rows(tmp_path / "out")
    assert sorted(r["path"] for r in rows) == ["src-zip/java.base/java/lang/A.java", "src-zip/java.base/java/lang/B.java",
                                                "tree/pkg/sub/util.h"]
    assert manifest["skipped"]["language_not_selected"] == 8  # blob.c is C (then binary)
    assert manifest["skipped"]["binary"] == 1


def test_rerun_reuses_and_refuses_other_config(tmp_path, tiny_tree):
    _build(tmp_path, [tiny_tree])
    _, again = _build(tmp_path, [tiny_tree])
    assert again["reused"] is True
    with pytest.raises(FileExistsError, match="different config"):
        _build(tmp_path, [tiny_tree], max_total_bytes=10)
    _, rebuilt = _build(tmp_path, [tiny_tree], max_total_bytes=10, overwrite=True)
    assert rebuilt["reused"] is False
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["bytes"] <= 10


def test_bad_root_is_clear_error(tmp_path):
    f = tmp_path / "file.py"
    f.write_text("x = 1\n")
    with pytest.raises(ValueError, match="neither a directory nor a .zip"):
        _build(tmp_path, [f])
