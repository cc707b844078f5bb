import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.filtering import shards
from llmfoundry_lite.filtering.pipeline import OutputDirError, run_filter
from llmfoundry_lite.filtering.report import format_headline
from tests.filtering.conftest import FILTER_CASES


def read_dir(path):
    rows = []
    for f in sorted(path.glob("*.parquet")):
        rows += pq.read_table(f).to_pylist()
    return rows


def test_every_filter_decides_as_expected(filter_cfg):
    cfg = filter_cfg()
    stats = run_filter(cfg, progress=False)
    out = cfg.output
    kept, rejected = read_dir(Path(out) / "kept"), read_dir(Path(out) / "rejected")
    outcome = {r["path"]: "kept" for r in kept} | {r["path"]: r["reason"] for r in rejected}
    assert outcome == {p: expected for p, _, expected in FILTER_CASES}
    assert stats["seen"] == 13 and stats["kept"] == 3 and stats["rejected"] == 7 and stats["skipped"] == 3
    assert stats["skipped_by_reason"] == {"bad_json_line": 1, "null_content": 1, "empty": 1}
    assert stats["rejected_by_reason"]["near_duplicate"] == 1
    contact = next(r for r in kept if r["path"] == "app/contact.py")
    assert "<EMAIL>" in contact["content"] and "jane.roe" not in contact["content"]
    assert contact["pii_email"] == 1 and stats["pii"]["email"] == 1
    main = next(r for r in kept if r["path"] == "app/main.py")
    assert main["dup_cluster"] == "doc0" and main["dup_cluster_size"] == 2
    near = next(r for r in rejected if r["path"] == "app/near.py")
    assert near["detail"] == "duplicate of doc0" and near["content"].startswith("# variant 2")
    assert set(kept[0]) >= {"id", "content", "path", "lang", "repository_name", "size", "ext", "content_hash"}
    assert "reason" not in kept[0]
    assert json.loads((Path(out) / "stats.json").read_text()) == stats
    assert "kept + rejected + skipped = 3 + 7 + 3 = 13 == seen 13" in format_headline(stats)


def test_output_is_identical_for_one_and_two_workers(filter_cfg, tmp_path):
    one = filter_cfg(output=str(tmp_path / "w1"), workers=1)
    two = filter_cfg(output=str(tmp_path / "w2"), workers=2)
    run_filter(one, progress=False)
    run_filter(two, progress=False)
    for sub in ("kept", "rejected"):
        for f in sorted((tmp_path / "w1" / sub).glob("*.parquet")):
            assert f.read_bytes() == (tmp_path / "w2" / sub / f.name).read_bytes()


def test_resume_after_a_crash_loses_and_duplicates_nothing(filter_cfg, monkeypatch, tmp_path):
    cfg = filter_cfg()
    real = shards.finalize_shard

    def crash_on_second(index, *args):
        if index == 1:
            raise KeyboardInterrupt("killed")
        return real(index, *args)

    monkeypatch.setattr("llmfoundry_lite.filtering.pipeline.finalize_shard", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_filter(cfg, progress=False)
    out = tmp_path / "out"
    assert len(list((out / "work" / "pass1").glob("*.done"))) == 2 and not (out / "stats.json").exists()
    first_kept = (out / "kept" / "part-00000.parquet").stat().st_mtime_ns
    monkeypatch.setattr("llmfoundry_lite.filtering.pipeline.finalize_shard", real)
    stats = run_filter(cfg, progress=False)
    assert (out / "kept" / "part-00000.parquet").stat().st_mtime_ns == first_kept  # finished unit reused
    ids = [r["id"] for r in read_dir(out / "kept") + read_dir(out / "rejected")]
    assert len(ids) == len(set(ids)) == 10 and stats["kept"] == 3
    assert not list((out / "kept").glob("*.tmp")) and not list((out / "kept").glob(".*.tmp"))


def test_rerun_with_same_config_reuses_and_other_config_is_refused(filter_cfg):
    cfg = filter_cfg()
    first = run_filter(cfg, progress=False)
    assert run_filter(filter_cfg(workers=2), progress=False) == first  # scheduling keys may change
    with pytest.raises(OutputDirError, match=r"different filter config \(differs at: heuristics.max_line_length\)"):
        run_filter(filter_cfg("heuristics.max_line_length=500"), progress=False)


def test_non_empty_foreign_output_dir_is_refused(filter_cfg, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="not empty and holds no filter_config.json"):
        run_filter(filter_cfg(), progress=False)


def test_filters_switch_off(filter_cfg):
    cfg = filter_cfg("autogen.enabled=false", "parse.enabled=false", "heuristics.enabled=false",
                     "dedup.exact=false", "dedup.near=false")
    stats = run_filter(cfg, progress=False)
    assert stats["kept"] == 10 and stats["rejected"] == 0


def test_kill_during_the_filter_pass_then_rerun_gives_the_clean_result(filter_cfg, monkeypatch, tmp_path):
    clean = filter_cfg(output=str(tmp_path / "clean"))
    run_filter(clean, progress=False)
    real = shards.process_document

    def die_in_second_shard(doc, cfg, permissions):
        if doc["path"] == "src/long.py":
            raise KeyboardInterrupt("killed")
        return real(doc, cfg, permissions)

    cfg = filter_cfg()
    monkeypatch.setattr(shards, "process_document", die_in_second_shard)
    with pytest.raises(KeyboardInterrupt):
        run_filter(cfg, progress=False)
    work = tmp_path / "out" / "work" / "pass1"
    assert len(list(work.glob("*.done"))) == 1
    assert len(list(work.glob(".*.parquet.*.tmp"))) == 1  # the half-written unit, never renamed into place
    monkeypatch.setattr(shards, "process_document", real)
    run_filter(cfg, progress=False)
    for sub in ("kept", "rejected"):
        for f in sorted((tmp_path / "clean" / sub).glob("*.parquet")):
            assert f.read_bytes() == (tmp_path / "out" / sub / f.name).read_bytes()


def test_row_group_units_split_a_file_and_keep_the_same_documents(filter_cfg, tmp_path):
    from tests.filtering.stack_rows import module, stack_row, write_stack

    rows = [stack_row(f"m{i}.py", module(i)) for i in range(12)] + [stack_row("copy.py", module(3))]
    src = tmp_path / "src" / "one.parquet"
    write_stack(src, rows)
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(src)), src, row_group_size=4)  # 4 row groups
    whole = run_filter(filter_cfg(input=[str(src)], output=str(tmp_path / "whole")), progress=False)
    split = run_filter(filter_cfg("unit_bytes=1", input=[str(src)], output=str(tmp_path / "split")), progress=False)
    assert whole["units"] == 1 and split["units"] == 4 and len(list((tmp_path / "split" / "kept").glob("*.parquet"))) == 4
    drop = ("units", "config_hash", "inputs_key")
    assert {k: v for k, v in split.items() if k not in drop} == {k: v for k, v in whole.items() if k not in drop}
    for sub in ("kept", "rejected"):
        assert read_dir(tmp_path / "whole" / sub) == read_dir(tmp_path / "split" / sub)  # same rows, same order
    assert split["rejected_by_reason"] == {"exact_duplicate": 1}  # the copy sits in another unit than m3
