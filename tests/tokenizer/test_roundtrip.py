"""Every input round-trips exactly through the committed byte-level tokenizer."""

from __future__ import annotations

import pytest

from llmfoundry_lite.tokenizer import load_tokenizer
from llmfoundry_lite.tokenizer.io import clean_text, encode_texts

UNUSUAL = {
    "tabs": "def f():\n\tif x:\n\t\treturn 1\t# tab comment\n",
    "crlf": "line one\r\nline two\r\n\r\n    indented\r\n",
    "lone_cr": "old mac\rline\r",
    "emoji": "print('\U0001f600 \U0001f468\u200d\U0001f469\u200d\U0001f467 ok')  # 🚀\n",
    "replacement_char": "bad bytes: \ufffd\ufffd here\n",
    "long_identifier": "x = " + "very_long_identifier_" * 500 + "end\n",
    "cjk_and_rtl": "# 注释 コメント تعليق\nname = 'Zoë'\n",
    "control_chars": "a\x00b\x0bc\x0cd\x1b[0m\x7f\n",
    "digits": "pi = 3.14159265358979; big = 12345678901234567890\n",
    "trailing_spaces": "x = 1   \n  \n\n\n        \n",
    "empty": "",
    "only_spaces": "        ",
    "combining": "e\u0301 a\u0308 n\u0303\n",
}


@pytest.fixture(scope="module")
def tok(asset_tokenizer_dir):
    return load_tokenizer(asset_tokenizer_dir)


@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_unusual_text_round_trips(tok, name):
    text = UNUSUAL[name]
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids, skip_special_tokens=False) == text


def test_invalid_utf8_decoded_with_replacement_round_trips(tok):
    text = b"ok \xff\xfe broken \xc3( end".decode("utf-8", "replace")
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text
    assert text.count("\ufffd") == 3


def test_lone_surrogate_is_replaced_not_crashing(tok):
    text = "a\ud800b"
    assert clean_text(text) == "a\ufffdb"
    (ids,) = encode_texts(tok, [text])
    assert tok.decode(ids) == "a\ufffdb"


def test_digits_are_single_tokens(tok):
    enc = tok.encode("x = 1234567890")
    digit_tokens = [t for t in enc.tokens if any(c.isdigit() for c in t)]
    assert digit_tokens == list("1234567890")


def test_newline_and_indentation_share_a_token(tok):
    enc = tok.encode("if x:\n        return y\n")
    assert "Ċ" + "Ġ" * 8 in enc.tokens  # "\n" + 8 spaces, byte-level spelling


def test_encode_texts_adds_no_eos(tok):
    (ids,) = encode_texts(tok, ["hello"])
    assert 0 not in ids and tok.decode(ids) == "hello"


def test_code_split_pattern_pieces():
    from tokenizers import Regex, pre_tokenizers

    from llmfoundry_lite.tokenizer.recipes import CODE_SPLIT_PATTERN

    split = pre_tokenizers.Split(Regex(CODE_SPLIT_PATTERN), behavior="isolated")
    pieces = [p for p, _ in split.pre_tokenize_str("if ok:\n        self.max_len = f(x_1, 42)  # @see\n\n\treturn")]
    assert pieces == [
        "if", " ok", ":", "\n        ", "self", ".max_len", " =", " f", "(x_", "1", ",", " ", "4", "2", ")",
        " ", " #", " @", "see", "\n\n\t", "return",
    ]
