"""``check_shards_manifest``: training refuses shards that do not match its tokenizer or model."""

from __future__ import annotations

import pytest

from llmfoundry_lite.shards.build import build_shards
from llmfoundry_lite.shards.manifest import check_shards_manifest

from .conftest import ASSET_TOKENIZER, shard_cfg


@pytest.fixture()
def shards(corpus_dir, tmp_path):
    build_shards(shard_cfg(corpus_dir, tmp_path / "shards"))
    return tmp_path / "shards"


def test_matching_run_passes(shards):
    m = check_shards_manifest(shards, ASSET_TOKENIZER, 64, 1024)
    assert m["max_seq_len"] == 64 and m["vocab_size"] == 1024


def test_mismatches_are_named(shards, tmp_path):
    with pytest.raises(ValueError, match="max_seq_len: model has 128, shards hold samples of 64"):
        check_shards_manifest(shards, ASSET_TOKENIZER, 128, 1024)
    with pytest.raises(ValueError, match="vocab_size: model has 8192, the shards' tokenizer has 1024"):
        check_shards_manifest(shards, None, 64, 8192)
    other = tmp_path / "other_tok"
    other.mkdir()
    (other / "tokenizer.json").write_text((ASSET_TOKENIZER / "tokenizer.json").read_text().replace("\n", " \n"))
    with pytest.raises(ValueError, match="tokenizer: .*other_tok has sha256"):
        check_shards_manifest(shards, other, 64, 1024)


def test_unfinished_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a finished shards directory"):
        check_shards_manifest(tmp_path, None, 64, 1024)


def test_foreign_output_directory_is_never_cleared(corpus_dir, tmp_path):
    foreign = tmp_path / "mine"
    (foreign / "train").mkdir(parents=True)
    (foreign / "train" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="exists and is not a shards directory"):
        build_shards(shard_cfg(corpus_dir, foreign))
    assert (foreign / "train" / "notes.txt").read_text() == "keep me"
