"""Special-token layout, and that literal special strings in source never encode to special ids."""

from __future__ import annotations

import json

import pytest

from llmfoundry_lite.tokenizer import load_manifest, load_tokenizer
from llmfoundry_lite.tokenizer.io import encode_texts
from llmfoundry_lite.tokenizer.special import (
    EOS,
    FIM_MIDDLE,
    FIM_PAD,
    FIM_PREFIX,
    FIM_SUFFIX,
    PAD,
    UL2_MODES,
    sentinel,
    special_tokens,
)


@pytest.fixture(scope="module")
def tok(asset_tokenizer_dir):
    return load_tokenizer(asset_tokenizer_dir)


def test_layout_matches_special_py(tok, asset_tokenizer_dir):
    m = load_manifest(asset_tokenizer_dir)
    specials = special_tokens(m["num_reserved"])
    assert [tok.token_to_id(s) for s in specials] == list(range(len(specials)))
    assert (tok.token_to_id(EOS), tok.token_to_id(PAD), tok.token_to_id(FIM_PREFIX)) == (0, 1, 2)
    assert m["eos_id"] == 0 and m["pad_id"] == 1 and m["num_special"] == len(specials) == 256
    assert m["special_ids"][UL2_MODES["X"]] == 8 and m["sentinel_id_range"] == [9, 108]
    assert tok.get_vocab_size() == m["vocab_size"] == 1024


@pytest.mark.parametrize("literal", [EOS, PAD, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD, UL2_MODES["R"], sentinel(7)])
def test_literal_special_text_never_encodes_to_special_ids(tok, literal):
    text = f"s = '{literal}'\n# {literal}{literal}\n{literal}"
    ids = tok.encode(text).ids
    assert min(ids) >= 256, [i for i in ids if i < 256]
    assert tok.decode(ids) == text
    (batch_ids,) = encode_texts(tok, [text])
    assert batch_ids == ids


def test_special_ids_decode_to_their_text_and_can_be_skipped(tok):
    body = tok.encode("x = 1").ids
    assert tok.decode([2, *body, 0], skip_special_tokens=False) == f"{FIM_PREFIX}x = 1{EOS}"
    assert tok.decode([2, *body, 0]) == "x = 1"


def test_transformers_loads_with_eos_pad_and_matches_special_strings(asset_tokenizer_dir, tok):
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast.from_pretrained(str(asset_tokenizer_dir))
    assert (hf.eos_token_id, hf.pad_token_id, len(hf)) == (0, 1, 1024)
    # A FIM prompt written as a string reaches the sentinel ids under transformers (vLLM and editor
    # clients build it so), while our own loader keeps the same text as text.
    ids = hf(f"{FIM_PREFIX}a{EOS}")["input_ids"]
    assert ids[0] == 2 and ids[-1] == 0 and hf.decode(ids) == f"{FIM_PREFIX}a{EOS}"
    assert min(tok.encode(f"{FIM_PREFIX}a{EOS}").ids) >= 256
    assert json.loads((asset_tokenizer_dir / "tokenizer_config.json").read_text())["split_special_tokens"] is False


def test_committed_asset_is_current(asset_tokenizer_dir):
    from llmfoundry_lite.tokenizer import tokenizer_sha256
    from llmfoundry_lite.tokenizer.recipes import build_recipe

    on_disk = json.loads((asset_tokenizer_dir / "tokenizer.json").read_text())
    assert on_disk["pre_tokenizer"] == json.loads(build_recipe("code").to_str())["pre_tokenizer"]
    assert load_manifest(asset_tokenizer_dir)["tokenizer_sha256"] == tokenizer_sha256(asset_tokenizer_dir)
