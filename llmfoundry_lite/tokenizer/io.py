"""Loading a trained tokenizer directory, hashing it, and encoding text safely.

A tokenizer directory holds ``tokenizer.json`` (the HF ``tokenizers`` pipeline),
``tokenizer_config.json`` + ``special_tokens_map.json`` (so
``transformers.PreTrainedTokenizerFast.from_pretrained(dir)`` has eos/pad set) and
``manifest.json`` (vocab size, special ids, training sample hash).

Special tokens are registered as *special added tokens* so decoders can skip them
and transformers knows them, but ordinary text must never encode to them: a file
that literally contains ``<fim_prefix>`` is data, not a control token. Always load
through ``load_tokenizer``, which switches on ``encode_special_tokens`` (the flag is
not stored in tokenizer.json). Only training code inserts special ids. For transformers
users (``tokenizer_config.json``, HF exports) ``split_special_tokens`` is false, the
ecosystem's convention: a FIM or chat prompt written as a string (``<fim_prefix>…``,
``apply_chat_template``) encodes to the sentinel ids, as vLLM and editor clients expect.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
_SURROGATE = re.compile("[\ud800-\udfff]")


def _dir_file(tokenizer_dir: str | Path, name: str) -> Path:
    path = Path(tokenizer_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; train one with data_prep/train_tokenizer.py")
    return path


def load_tokenizer(tokenizer_dir: str | Path) -> Tokenizer:
    """The ``tokenizers.Tokenizer`` in ``tokenizer_dir``, with special-token matching off for text."""
    from tokenizers import Tokenizer

    return text_safe(Tokenizer.from_file(str(_dir_file(tokenizer_dir, TOKENIZER_FILE))))


def text_safe(tok: Tokenizer) -> Tokenizer:
    """Switch special-token matching off for text (the flag is not saved in tokenizer.json).

    Use on every ``Tokenizer`` built from a file or a JSON string (``Tokenizer.from_str`` of a
    checkpoint's copy): a literal ``<fim_prefix>`` in code must encode as text.
    """
    tok.encode_special_tokens = True
    tok.no_truncation()
    tok.no_padding()
    return tok


def load_manifest(tokenizer_dir: str | Path) -> dict:
    """The tokenizer's ``manifest.json`` (vocab size, special ids, sample hash)."""
    return json.loads(_dir_file(tokenizer_dir, MANIFEST_FILE).read_text())


def tokenizer_sha256(tokenizer_dir: str | Path) -> str:
    """SHA-256 of ``tokenizer.json``: the identity shards and checkpoints record."""
    return hashlib.sha256(_dir_file(tokenizer_dir, TOKENIZER_FILE).read_bytes()).hexdigest()


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (possible in JSON input) replaced by U+FFFD; tokenizers needs valid UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


def encode_texts(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, specials never matched, no BOS/EOS added (callers add EOS)."""
    encs = tok.encode_batch_fast([clean_text(t) for t in texts], add_special_tokens=False)
    return [e.ids for e in encs]
