"""``shard_stack.py`` end to end on a tiny corpus: stages chain, rerun reuses every stage."""

from __future__ import annotations

import json

import pytest

from llmfoundry_lite.config import ConfigError

from .conftest import ASSET_TOKENIZER


def _args(corpus, tmp_path, *extra):
    return [
        f"input=[{corpus}]",
        "filter_enabled=false",
        f"tokenizer.output={tmp_path / 'tok'}",
        "tokenizer.vocab_size=512",
        "tokenizer.num_reserved=0",
        f"shards.output={tmp_path / 'shards'}",
        "shards.max_seq_len=64",
        "shards.val_fraction=0.25",
        "shards.unit_bytes=1",
        *extra,
    ]


def test_stack_trains_vocab_then_shards_and_reuses_on_rerun(corpus_dir, tmp_path, capsys):
    from llmfoundry_lite.cli.shards import run

    first = run(_args(corpus_dir, tmp_path))
    assert first["tokenizer"]["vocab_size"] == 512 and first["tokenizer"]["reused"] is False
    shards = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert shards["tokenizer_sha256"] == first["tokenizer"]["tokenizer_sha256"]
    assert shards["vocab_size"] == 512 and shards["max_seq_len"] == 64
    assert shards["splits"]["train"]["docs"] + shards["splits"]["val"]["docs"] == 46
    second = run(_args(corpus_dir, tmp_path))
    assert second["tokenizer"]["reused"] is True and second["shards"]["reused"] is True
    out = capsys.readouterr().out
    assert "== stage 2: vocabulary" in out and "reused" in out


def test_stack_reruns_the_stages_a_replaced_input_affects(corpus_dir, tmp_path):
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmfoundry_lite.cli.shards import run

    from .conftest import make_docs

    run(_args(corpus_dir, tmp_path, "filter_enabled=true", f"filter.output={tmp_path / 'f'}", "filter.report=false"))
    time.sleep(0.01)
    pq.write_table(pa.Table.from_pylist(make_docs(25, 200)), corpus_dir / "b.parquet", row_group_size=4)  # 17 -> 25 rows
    again = run(_args(corpus_dir, tmp_path, "filter_enabled=true", f"filter.output={tmp_path / 'f'}",
                      "filter.report=false"))
    assert again["filter"]["seen"] == 20 + 25 + 9
    assert again["tokenizer"]["reused"] is False and again["shards"]["reused"] is False
    kept = again["filter"]["kept"]
    assert again["shards"]["splits"]["train"]["docs"] + again["shards"]["splits"]["val"]["docs"] == kept


def test_stack_publishes_filter_and_shards_to_an_object_store(corpus_dir, tmp_path):
    import fsspec

    from llmfoundry_lite.cli.shards import run

    fs = fsspec.filesystem("memory")
    remote = ["filter_enabled=true", "filter.output=memory://lake/filtered", f"filter.staging={tmp_path / 'fs'}",
              "filter.report=false", "shards.output=memory://lake/shards", f"shards.staging={tmp_path / 'ss'}"]
    try:
        summary = run(_args(corpus_dir, tmp_path, *remote))
        local = run(_args(corpus_dir, tmp_path / "local", "filter_enabled=true", f"filter.output={tmp_path / 'f'}",
                          "filter.report=false"))
        assert summary["filter"]["kept"] == local["filter"]["kept"]  # the vocabulary read kept/ from the store
        assert summary["tokenizer"]["tokenizer_sha256"] == local["tokenizer"]["tokenizer_sha256"]
        manifest = json.loads(fs.cat("/lake/shards/manifest.json"))
        assert manifest["splits"] == local["shards"]["splits"]
        index = json.loads(fs.cat("/lake/shards/train/index.json"))  # what streaming's remote= reads
        assert sum(s["samples"] for s in index["shards"]) == manifest["splits"]["train"]["samples"]
        for shard in index["shards"]:
            stored = shard["zip_data"] or shard["raw_data"]  # compressed shards list their zip file
            assert fs.exists(f"/lake/shards/train/{stored['basename']}")
    finally:
        fs.rm("/lake", recursive=True)


def test_stack_with_sources_dedups_across_them_and_shards_each_per_language(corpus_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmfoundry_lite.cli.shards import run

    from .conftest import make_docs

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    copies = make_docs(20, 0)[:8]  # the first 8 documents of ours, byte for byte
    pq.write_table(pa.Table.from_pylist([{**d, "id": f"their-{i}"} for i, d in enumerate(copies + make_docs(40, 300))]),
                   theirs / "t.parquet", row_group_size=5)
    args = [a for a in _args(corpus_dir, tmp_path) if not a.startswith("input=")]
    summary = run([*args, "filter_enabled=true", f"filter.output={tmp_path / 'f'}", "filter.report=false",
                    f"sources.ours.input=[{corpus_dir}]", f"sources.theirs.input=[{theirs}]",
                    "sources.ours.split_languages=[Python]"])
    stats = summary["filter"]
    copied = stats["dedup"]["cross_source"]["theirs -> ours"]
    kept_ours = stats["sources"]["ours"]["kept"]
    assert copied >= 6 and stats["sources"]["theirs"]["kept"] <= 48 - copied  # (short copies may fail a heuristic)
    streams = summary["shards"]["streams"]
    assert list(streams) == ["ours-python", "ours-other", "theirs"]
    docs = {name: m["splits"]["train"]["docs"] + m["splits"]["val"]["docs"] for name, m in streams.items()}
    assert docs["ours-python"] + docs["ours-other"] == kept_ours
    assert streams["ours-python"]["skips"]["language_not_selected"] == docs["ours-other"]
    assert len({m["tokenizer_sha256"] for m in streams.values()}) == 1
    for name, m in streams.items():
        assert json.loads((tmp_path / "shards" / name.replace("-", "/") / "manifest.json").read_text())["splits"] == m["splits"]
    assert streams["theirs"]["splits"]["train"]["docs"] + streams["theirs"]["splits"]["val"]["docs"] == (
        stats["sources"]["theirs"]["kept"])


def test_stack_with_reused_tokenizer(corpus_dir, tmp_path):
    from llmfoundry_lite.cli.shards import run

    summary = run(_args(corpus_dir, tmp_path, f"reuse_tokenizer={ASSET_TOKENIZER}"))
    assert summary["tokenizer_dir"] == str(ASSET_TOKENIZER)
    assert summary["shards"]["vocab_size"] == 1024
    assert not (tmp_path / "tok").exists()


def test_stack_config_errors_name_the_key(tmp_path):
    from llmfoundry_lite.config import load_config
    from llmfoundry_lite.shards.stack import StackConfig

    with pytest.raises(ConfigError, match="reuse_tokenizer"):
        load_config(StackConfig, None, [f"reuse_tokenizer={tmp_path}"])
    with pytest.raises(ConfigError, match="shards.max_seq_lenn"):
        load_config(StackConfig, None, ["shards.max_seq_lenn=3"])
    with pytest.raises(ConfigError, match="remainder: unknown choice 'keep'"):
        load_config(StackConfig, None, ["shards.remainder=keep"])


def test_local_yaml_matches_local_stack_and_code_tiny():
    from pathlib import Path

    from llmfoundry_lite.config import load_config
    from llmfoundry_lite.corpus.local_stack import LocalStackConfig
    from llmfoundry_lite.shards.stack import StackConfig
    from llmfoundry_lite.training.config import TrainConfig

    root = Path(__file__).resolve().parents[2]
    stack = load_config(StackConfig, root / "yamls" / "data" / "local.yaml")
    # Same corpus settings as local-stack.yaml, so `make_local_stack.py` output is reused, not rebuilt.
    assert stack.corpus == load_config(LocalStackConfig, root / "yamls" / "data" / "local-stack.yaml")
    tiny = load_config(TrainConfig, root / "yamls" / "code-tiny.yaml")
    assert (stack.tokenizer.vocab_size, stack.shards.max_seq_len) == (tiny.model.vocab_size, tiny.model.max_seq_len)
    assert (stack.tokenizer.output, stack.shards.output) == (tiny.tokenizer, tiny.train_loader.local)


@pytest.mark.parametrize("preset", ["code-125m.yaml", "code-350m.yaml", "code-1b.yaml", "code-3b.yaml"])
def test_stack_32k_yaml_feeds_the_gpu_presets(preset):
    from pathlib import Path

    from llmfoundry_lite.config import load_config
    from llmfoundry_lite.shards.stack import StackConfig
    from llmfoundry_lite.training.config import TrainConfig

    root = Path(__file__).resolve().parents[2]
    if not (root / "yamls" / preset).is_file():
        pytest.skip(f"{preset} is not shipped")
    stack = load_config(StackConfig, root / "yamls" / "data" / "stack-32k.yaml")
    train = load_config(TrainConfig, root / "yamls" / preset)
    assert (stack.tokenizer.vocab_size, stack.shards.max_seq_len) == (train.model.vocab_size, train.model.max_seq_len)
    assert (stack.tokenizer.output, stack.shards.output) == (train.tokenizer, train.train_loader.local)


def test_two_sources_yaml_feeds_the_streams_preset():
    from pathlib import Path

    from llmfoundry_lite.config import load_config
    from llmfoundry_lite.shards.stack import StackConfig, stream_plan
    from llmfoundry_lite.training.config import TrainConfig

    root = Path(__file__).resolve().parents[2]
    stack = load_config(StackConfig, root / "yamls/data/two-sources.yaml")
    plan = stream_plan(stack, {name: [] for name in stack.sources})
    train = load_config(TrainConfig, root / "yamls/code-tiny-streams.yaml")
    assert {name: s.output for name, _, s in plan} == train.train_loader.stream_dirs()
    assert train.tokenizer == stack.tokenizer.output and train.model.max_seq_len == stack.shards.max_seq_len
    assert stack.sources["mixed"].filter == {"heuristics": {"max_line_length": 2000}}
