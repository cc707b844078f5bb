"""Per-language streams of one source in one pass: each unit read and tokenized once, every stream's
directory byte-identical to building it alone, resumed and reset stream by stream."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from llmfoundry_lite.shards import build, writer
from llmfoundry_lite.shards.build import build_shards
from llmfoundry_lite.shards.config import ShardsConfig
from llmfoundry_lite.shards.stack import StackConfig, StackSource, shards_stage, stream_plan

from .conftest import ASSET_TOKENIZER, shard_cfg, tree_bytes

UNITS = 4 + 5 + 9  # unit_bytes=1: one per row group (20 rows / 6, 17 rows / 4) and per JSONL line


def _stack(corpus: Path, out: Path) -> StackConfig:
    shards = ShardsConfig(output=str(out), max_seq_len=64, val_fraction=0.25, unit_bytes=1, progress=False)
    source = StackSource(input=[str(corpus)], split_languages=["Python", "C"])
    return StackConfig(sources={"ours": source}, filter_enabled=False, shards=shards)


@pytest.fixture()
def reads(monkeypatch) -> Counter:
    """How often each unit is read (``iter_unit`` calls in this process, by unit name)."""
    seen: Counter = Counter()
    real = writer.iter_unit

    def counting(unit, skips):
        seen[unit.name] += 1
        return real(unit, skips)

    monkeypatch.setattr(writer, "iter_unit", counting)
    return seen


def test_split_languages_read_each_unit_once_and_match_separate_builds(corpus_dir, tmp_path, reads):
    docs = {"ours": [str(corpus_dir)]}
    streams = shards_stage(_stack(corpus_dir, tmp_path / "one"), docs, str(ASSET_TOKENIZER), log=False)["streams"]
    assert list(streams) == ["ours-python", "ours-c", "ours-other"]
    assert len(reads) == UNITS and set(reads.values()) == {1}  # not once per language
    reads.clear()
    for _, inputs, scfg in stream_plan(_stack(corpus_dir, tmp_path / "ref"), docs):  # the way it was: a pass each
        build_shards(dataclasses.replace(scfg, input=inputs, tokenizer=str(ASSET_TOKENIZER)))
    assert len(reads) == UNITS and set(reads.values()) == {3}
    for sub in ("python", "c", "other"):
        one, ref = tree_bytes(tmp_path / "one" / "ours" / sub), tree_bytes(tmp_path / "ref" / "ours" / sub)
        assert sum(name.endswith(".mds.zstd") for name in one) >= 2 and "manifest.json" in one
        assert one == ref, sub
    written = {name: s["splits"]["train"]["docs"] + s["splits"]["val"]["docs"] for name, s in streams.items()}
    assert sum(written.values()) == 46 and min(written.values()) > 0
    for name, s in streams.items():
        assert s["skips"]["language_not_selected"] == 46 - written[name]


def _two(corpus: Path, out: Path, **kw) -> list[ShardsConfig]:
    return [shard_cfg(corpus, out / "py", languages=["Python"]),
            shard_cfg(corpus, out / "rest", exclude_languages=["Python"], **kw)]


def test_a_unit_is_redone_only_for_the_streams_lacking_its_record(corpus_dir, tmp_path, reads):
    build.build_shard_streams(_two(corpus_dir, tmp_path / "clean"))
    out = tmp_path / "out"
    build.build_shard_streams(_two(corpus_dir, out))
    for stream in ("py", "rest"):  # killed before the manifests were written ...
        (out / stream / "manifest.json").unlink()
    record = sorted((out / "rest" / ".units").glob("unit-*.json"))[3]
    record.unlink()  # ... and before one stream recorded a unit whose directories are in place: it redoes it
    reads.clear()
    py, rest = build.build_shard_streams(_two(corpus_dir, out))
    assert (py["reused"], py["units_run"]) == (False, 0) and (rest["reused"], rest["units_run"]) == (False, 1)
    assert list(reads) == [record.stem] and reads[record.stem] == 1
    assert tree_bytes(out) == tree_bytes(tmp_path / "clean")


def test_a_stream_whose_config_changed_is_reset_alone(corpus_dir, tmp_path, reads):
    build.build_shard_streams(_two(corpus_dir, tmp_path))
    kept = tree_bytes(tmp_path / "py")
    reads.clear()
    py, rest = build.build_shard_streams(_two(corpus_dir, tmp_path, max_seq_len=32))
    assert py["reused"] is True and rest["reused"] is False and rest["units_run"] == UNITS
    assert len(reads) == UNITS and set(reads.values()) == {1}
    assert tree_bytes(tmp_path / "py") == kept
    assert json.loads((tmp_path / "rest" / "manifest.json").read_text())["max_seq_len"] == 32
    alone = build_shards(shard_cfg(corpus_dir, tmp_path / "alone", exclude_languages=["Python"], max_seq_len=32))
    assert alone["fingerprint"] == rest["fingerprint"]
    assert tree_bytes(tmp_path / "alone") == tree_bytes(tmp_path / "rest")


def test_streams_of_one_pass_must_share_their_input_and_differ_in_output(corpus_dir, tmp_path):
    py, rest = _two(corpus_dir, tmp_path)
    with pytest.raises(ValueError, match="shards.unit_bytes differs between streams"):
        build.build_shard_streams([py, dataclasses.replace(rest, unit_bytes=2)])
    with pytest.raises(ValueError, match="must write different outputs"):
        build.build_shard_streams([py, dataclasses.replace(rest, output=py.output)])
    with pytest.raises(ValueError, match="at least one"):
        build.build_shard_streams([])


def test_streams_are_byte_identical_for_1_and_2_workers(corpus_dir, tmp_path):
    build.build_shard_streams(_two(corpus_dir, tmp_path / "w1"))
    build.build_shard_streams([dataclasses.replace(c, workers=2) for c in _two(corpus_dir, tmp_path / "w2")])
    assert tree_bytes(tmp_path / "w1") == tree_bytes(tmp_path / "w2")
