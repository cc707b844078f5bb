"""Several named sources in one filter run: dedup across them, per-source overrides, sources added later."""

import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.config import ConfigError
from llmfoundry_lite.filtering.pipeline import run_filter


def _cfg(filter_cfg, root, out, names, *overrides):
    flags = [f"sources.{n}.input=[{root / n}]" for n in names]
    return filter_cfg(*flags, *overrides, input=[], output=str(root / out))


def _ids(root, out, part):
    return sorted(r["max_stars_repo_path"] for r in pq.read_table(root / out / "kept" / f"part-{part:05d}.parquet").to_pylist())


def test_a_file_in_two_sources_is_kept_once_in_the_first_listed(filter_cfg, sources):
    stats = run_filter(_cfg(filter_cfg, sources, "f", ["mine", "stack"]), progress=False)
    assert stats["dedup"]["cross_source"] == {"stack -> mine": 2}
    assert stats["sources"]["mine"] == {"parts": [0], "seen": 6, "kept": 6, "rejected": 0, "skipped": 0,
                                        "rejected_by_reason": {}}
    assert stats["sources"]["stack"]["kept"] == 4
    assert stats["sources"]["stack"]["rejected_by_reason"] == {"exact_duplicate": 1, "near_duplicate": 1}
    assert _ids(sources, "f", 0) == [f"m{i}.py" for i in range(1, 7)]
    flipped = run_filter(_cfg(filter_cfg, sources, "g", ["stack", "mine"]), progress=False)
    assert flipped["dedup"]["cross_source"] == {"mine -> stack": 2}
    assert "copy.py" in _ids(sources, "g", 0) and "m1.py" not in _ids(sources, "g", 1)


def test_a_source_added_later_reuses_the_others_signatures(filter_cfg, sources):
    run_filter(_cfg(filter_cfg, sources, "f", ["mine", "stack"]), progress=False)
    pass1 = {p.name: p.stat().st_mtime_ns for p in (sources / "f" / "work" / "pass1").glob("*.done")}
    grown = run_filter(_cfg(filter_cfg, sources, "f", ["mine", "stack", "so"]), progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (sources / "f" / "work" / "pass1").glob("*.done")}
    assert len(after) == 3 and all(after[k] == v for k, v in pass1.items())  # only the new source's pass 1 ran
    assert grown["dedup"]["cross_source"] == {"so -> mine": 1, "stack -> mine": 2}
    assert grown["sources"]["so"]["kept"] == 1 and grown["sources"]["so"]["parts"] == [2]
    fresh = run_filter(_cfg(filter_cfg, sources, "fresh", ["mine", "stack", "so"]), progress=False)
    assert {k: v for k, v in grown.items() if k != "config_hash"} == {k: v for k, v in fresh.items() if k != "config_hash"}
    for sub in ("kept", "rejected"):
        for part in sorted((sources / "fresh" / sub).glob("*.parquet")):
            assert (sources / "f" / sub / part.name).read_bytes() == part.read_bytes(), f"{sub}/{part.name}"


def test_per_source_overrides_apply_to_that_source_only(filter_cfg, sources):
    strict = "sources.stack.filter.heuristics.max_line_length=20"
    stats = run_filter(_cfg(filter_cfg, sources, "f", ["mine", "stack"], strict), progress=False)
    assert stats["sources"]["mine"]["kept"] == 6
    assert stats["sources"]["stack"]["rejected_by_reason"]["max_line_length"] == 6
    pass1 = {p.name for p in (sources / "f" / "work" / "pass1").glob("*.done")}
    looser = run_filter(_cfg(filter_cfg, sources, "f", ["mine", "stack"], "sources.stack.filter.heuristics.max_line_length=500"),
                        progress=False)
    now = {p.name for p in (sources / "f" / "work" / "pass1").glob("*.done")}
    assert len(now & pass1) == 1 and len(now) == 2  # mine's unit kept; stack's renamed by its new overrides
    assert looser["sources"]["stack"]["kept"] == 4


@pytest.mark.parametrize(("override", "message"), [
    ("sources.stack.filter.dedup.near=false", r"sources.stack.filter may not set \['dedup'\]"),
    ("sources.stack.filter.heuristics.nope=1", r"sources.stack.filter.heuristics.nope: Key 'nope' not in"),
])
def test_bad_source_configs_name_the_key(filter_cfg, sources, override, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(filter_cfg, sources, "f", ["mine", "stack"], override)
    with pytest.raises(ConfigError, match=r"give either input or sources, not both"):
        filter_cfg(f"sources.mine.input=[{sources / 'mine'}]", input=[str(sources / "stack")])


def test_one_file_in_two_sources_is_refused(filter_cfg, sources):
    cfg = filter_cfg(f"sources.a.input=[{sources / 'mine'}]", f"sources.b.input=[{sources / 'mine' / 'a.parquet'}]",
                     input=[], output=str(sources / "f"))
    with pytest.raises(ValueError, match=r"listed more than once .*a file belongs to one source"):
        run_filter(cfg, progress=False)


def test_renaming_a_source_or_changing_a_list_file_it_names_is_not_stale(filter_cfg, sources, tmp_path):
    first = run_filter(_cfg(filter_cfg, sources, "f", ["mine", "stack"]), progress=False)
    renamed = run_filter(filter_cfg(f"sources.mine.input=[{sources / 'mine'}]", f"sources.theirs.input=[{sources / 'stack'}]",
                                    input=[], output=str(sources / "f")), progress=False)
    assert set(renamed["sources"]) == {"mine", "theirs"} and renamed["dedup"]["cross_source"] == {"theirs -> mine": 2}
    assert renamed["kept"] == first["kept"]
    opt_out = tmp_path / "opt_out.txt"
    opt_out.write_text("nobody/else\n")
    listed = f"sources.stack.filter.opt_out.files=[{opt_out}]"
    before = run_filter(_cfg(filter_cfg, sources, "g", ["mine", "stack"], listed), progress=False)
    opt_out.write_text("them/lib\n")  # same override, new content: the source's units must be redone
    after = run_filter(_cfg(filter_cfg, sources, "g", ["mine", "stack"], listed), progress=False)
    assert before["sources"]["stack"]["kept"] == 4 and after["sources"]["stack"]["kept"] == 0
    assert after["sources"]["stack"]["rejected_by_reason"]["opt_out"] == 4
