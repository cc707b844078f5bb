"""The mixture: determinism keyed on (seed, index, epoch), weights, prefix_len contract, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from llmfoundry_lite.objectives import ObjectiveConfig, build_objective
from llmfoundry_lite.objectives.config import FIMConfig, UL2Config
from llmfoundry_lite.objectives.mixture import next_token
from tests.objectives.conftest import contexts, encode, padded

MIX = {"next_token": 0.5, "fim": 0.3, "ul2": 0.2}


def test_same_seed_index_epoch_gives_same_sample_in_any_call_order(tokenizer, stream):
    L = 128
    samples = contexts(stream, L, 40, 101)
    first = build_objective(ObjectiveConfig(weights=MIX), tokenizer, L)
    forward = [first(t, i, 0) for i, t in enumerate(samples)]
    second = build_objective(ObjectiveConfig(weights=MIX), tokenizer, L)  # fresh instance, reversed order
    for i in reversed(range(len(samples))):
        out = second(samples[i], i, 0)
        assert out.keys() == forward[i].keys()
        for key in out:
            assert np.array_equal(out[key], forward[i][key]), (i, key)


def test_epoch_and_seed_change_the_draws(tokenizer, stream):
    L = 128
    samples = contexts(stream, L, 40, 101)
    obj = build_objective(ObjectiveConfig(weights={"fim": 0.5, "ul2": 0.5}), tokenizer, L)
    other_seed = build_objective(ObjectiveConfig(weights={"fim": 0.5, "ul2": 0.5}, seed=18), tokenizer, L)
    same_epoch = [obj(t, i, 0)["input_ids"] for i, t in enumerate(samples)]
    next_epoch = [obj(t, i, 1)["input_ids"] for i, t in enumerate(samples)]
    seeded = [other_seed(t, i, 0)["input_ids"] for i, t in enumerate(samples)]
    assert sum(not np.array_equal(a, b) for a, b in zip(same_epoch, next_epoch, strict=True)) > 30
    assert sum(not np.array_equal(a, b) for a, b in zip(same_epoch, seeded, strict=True)) > 30


def test_objective_frequencies_follow_weights(tokenizer):
    obj = build_objective(ObjectiveConfig(weights=MIX), tokenizer, 64)
    picks = [obj.choose(i, 0) for i in range(4000)]
    for name, weight in MIX.items():
        assert abs(picks.count(name) / len(picks) - weight) < 0.03, name


def test_next_token_only_is_identity_with_padding_masked(tokenizer, special):
    L = 32
    tokens = padded(encode(tokenizer, "pass\n") + [special.eos], L, special.pad)
    out = build_objective(ObjectiveConfig(), tokenizer, L)(tokens, 5, 0)
    n = len(encode(tokenizer, "pass\n")) + 1
    assert out["input_ids"].tolist() == tokens.tolist()
    assert out["labels"].tolist() == tokens[:n].tolist() + [-100] * (L - n)
    assert out["segment_ids"].tolist() == [1] * n + [0] * (L - n)
    assert set(out) == {"input_ids", "labels", "segment_ids"}
    assert np.array_equal(next_token(tokens, special.pad, special.eos)["labels"], out["labels"])


def test_next_token_starts_a_segment_after_each_end_of_text(tokenizer, special):
    L = 32
    a, b = encode(tokenizer, "x = 1\n"), encode(tokenizer, "y\n")
    tokens = padded(a + [special.eos] + [special.eos] + b + [special.eos] + b, L, special.pad)
    out = build_objective(ObjectiveConfig(), tokenizer, L)(tokens, 0, 0)
    n = len(a) + len(b) * 2 + 3
    expected = [1] * (len(a) + 1) + [2] + [3] * (len(b) + 1) + [4] * len(b) + [0] * (L - n)
    assert out["segment_ids"].tolist() == expected  # a lone EOS is its own document; a cut one still counts


def test_prefix_lm_puts_prefix_len_on_every_sample(tokenizer, stream):
    L = 128
    cfg = ObjectiveConfig(weights=MIX, ul2=UL2Config(causal=False))
    obj = build_objective(cfg, tokenizer, L)
    outs = [(obj.choose(i, 0), obj(t, i, 0)) for i, t in enumerate(contexts(stream, L, 30, 57))]
    assert all(set(o) == {"input_ids", "labels", "segment_ids", "prefix_len"} for _, o in outs)
    assert all(int(o["prefix_len"]) == 0 for name, o in outs if name != "ul2")
    assert any(int(o["prefix_len"]) > 0 for name, o in outs if name == "ul2")
    causal = build_objective(ObjectiveConfig(weights=MIX), tokenizer, L)
    assert all("prefix_len" not in causal(t, i, 0) for i, t in enumerate(contexts(stream, L, 30, 57)))


def test_every_objective_respects_length_and_padding(tokenizer, special, stream):
    L = 96
    cfg = ObjectiveConfig(weights=MIX, fim=FIMConfig(fim_rate=0.9))
    obj = build_objective(cfg, tokenizer, L)
    samples = contexts(stream, L, 60, 37) + [padded(encode(tokenizer, "x = 1\n") + [special.eos], L, special.pad)] * 20
    for i, tokens in enumerate(samples):
        out = obj(tokens, i, 0)
        assert out["input_ids"].shape == out["labels"].shape == (L,)
        assert out["input_ids"].dtype == out["labels"].dtype == np.int64
        assert np.all(out["labels"][out["input_ids"] == special.pad] == -100)
        assert np.all((out["labels"] == -100) | (out["labels"] == out["input_ids"]))
        seg = out["segment_ids"]
        assert seg.shape == (L,) and seg.dtype == np.int64
        assert np.array_equal(seg == 0, out["input_ids"] == special.pad), (i, obj.choose(i, 0))
        assert np.array_equal(np.unique(seg[seg > 0]), np.arange(1, seg.max() + 1))  # 1, 2, 3, ... in order
        assert np.all(np.diff(seg[seg > 0]) >= 0)
        if obj.choose(i, 0) == "ul2":
            assert seg.max() == 1  # the whole UL2 body is one segment


def test_wrong_sample_length_is_refused(tokenizer):
    obj = build_objective(ObjectiveConfig(), tokenizer, 64)
    with pytest.raises(ValueError, match="expected max_seq_len=64"):
        obj(np.zeros(63, dtype=np.int32), 0, 0)


def test_tokenizer_without_special_tokens_is_refused():
    from tokenizers import Tokenizer, models

    bare = Tokenizer(models.BPE(vocab={"a": 0, "b": 1}, merges=[]))
    with pytest.raises(ValueError, match=re.escape("tokenizer has no '<|endoftext|>' token")):
        build_objective(ObjectiveConfig(), bare, 64)
