"""Training: exact rounded vocabulary, fillers, determinism, reuse, config validation."""

from __future__ import annotations

import json

import pytest

from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.tokenizer import load_tokenizer, tokenizer_sha256
from llmfoundry_lite.tokenizer.config import TokenizerConfig, round_vocab
from llmfoundry_lite.tokenizer.sample import draw_sample, strip_special_strings
from llmfoundry_lite.tokenizer.special import FIM_PREFIX, special_tokens, unused
from llmfoundry_lite.tokenizer.train import train_tokenizer


def _cfg(corpus, out, **kw) -> TokenizerConfig:
    return TokenizerConfig(input=[str(corpus)], output=str(out), **{"num_reserved": 11, "vocab_size": 500, **kw})


def test_round_vocab():
    assert [round_vocab(v) for v in (1, 64, 65, 32768, 49000)] == [64, 64, 128, 32768, 49024]


def test_vocab_is_rounded_and_filled_exactly(tiny_corpus, tmp_path):
    m = train_tokenizer(_cfg(tiny_corpus, tmp_path / "tok", vocab_size=1000), log=False)
    tok = load_tokenizer(tmp_path / "tok")
    assert m["vocab_size"] == tok.get_vocab_size() == 1024
    # 60 tiny near-identical docs cannot supply ~650 merges: fillers complete the vocabulary.
    assert m["num_unused_fillers"] > 0
    assert tok.token_to_id(unused(0)) is not None
    assert m["num_special"] == len(special_tokens(11)) == 120


def test_training_is_deterministic_and_reused(tiny_corpus, tmp_path):
    a = train_tokenizer(_cfg(tiny_corpus, tmp_path / "a"), log=False)
    b = train_tokenizer(_cfg(tiny_corpus, tmp_path / "b"), log=False)
    assert tokenizer_sha256(tmp_path / "a") == tokenizer_sha256(tmp_path / "b") == a["tokenizer_sha256"]
    assert a["sample"]["sha256"] == b["sample"]["sha256"] and a["reused"] is False
    again = train_tokenizer(_cfg(tiny_corpus, tmp_path / "a"), log=False)
    assert again["reused"] is True
    other = train_tokenizer(_cfg(tiny_corpus, tmp_path / "a", sample_seed=5, sample_bytes=3000), log=False)
    assert other["reused"] is False and other["sample"]["docs"] < a["sample"]["docs"]


def test_sample_is_seeded_budgeted_and_stripped_of_specials(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [{"id": f"d{i}", "content": f"x{i} = '{FIM_PREFIX}' * {i}\n" * 10, "path": "a.py"} for i in range(40)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s1 = draw_sample([str(path)], 2000, 0, 10_000, 0)
    s2 = draw_sample([str(path)], 2000, 0, 10_000, 0)
    s3 = draw_sample([str(path)], 2000, 1, 10_000, 0)
    assert s1.texts == s2.texts and s1.sha256 == s2.sha256 and s1.sha256 != s3.sha256
    before_strip = s1.bytes + s1.special_strings_removed * len(FIM_PREFIX)
    assert s1.docs_seen == 40 and 2000 <= before_strip < 2000 + 300  # one doc is < 300 bytes
    assert all(FIM_PREFIX not in t for t in s1.texts)
    assert s1.special_strings_removed == 10 * len(s1.texts)
    assert strip_special_strings("a<|endoftext|>b<fim_pad>", special_tokens(0)) == ("ab", 2)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="vocab_size=300 is below the 512 ids"):
        load_config(TokenizerConfig, None, ["vocab_size=300"])
    with pytest.raises(ConfigError, match="recipe: unknown recipe 'gpt2'"):
        load_config(TokenizerConfig, None, ["recipe=gpt2"])
    with pytest.raises(ConfigError, match="num_reserved must be >= 0"):
        load_config(TokenizerConfig, None, ["num_reserved=-1"])


def test_cli_trains_with_flags(tiny_corpus, tmp_path, capsys):
    from llmfoundry_lite.cli.tokenizer import main

    out = tmp_path / "cli_tok"
    main(["--input", str(tiny_corpus), "--output", str(out), "vocab_size=512", "num_reserved=0"])
    printed = capsys.readouterr().out
    assert "trained tokenizer at" in printed and '"eos_id": 0' in printed
    assert json.loads((out / "manifest.json").read_text())["vocab_size"] == 512


def test_foreign_output_directory_is_never_overwritten(tiny_corpus, tmp_path):
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "README.md").write_text("keep me")
    with pytest.raises(ValueError, match="exists and is not a tokenizer directory"):
        train_tokenizer(_cfg(tiny_corpus, foreign), log=False)
    assert (foreign / "README.md").read_text() == "keep me"


def test_streaming_sample_equals_the_sorted_prefix_and_holds_only_the_sample():
    import random

    from llmfoundry_lite.tokenizer.sample import Selection, doc_key

    rng = random.Random(0)
    docs = [(int.from_bytes(doc_key(0, f"d{i}"), "big"), i, rng.randint(1, 500)) for i in range(3000)]
    budget = 20_000
    chosen = Selection(budget)
    peak = 0
    for key, order, size in docs:
        chosen.offer((key, 0, order), size, lambda o=order: f"t{o}")
        peak = max(peak, chosen.total)
    expected, total = [], 0
    for _key, order, size in sorted(docs):
        if total >= budget:
            break
        expected.append(f"t{order}")
        total += size
    assert chosen.texts() == expected
    assert peak < budget + 500  # held bytes follow the budget (+ one document), not the 3000 documents
