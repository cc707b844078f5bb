"""Fixtures: the committed test tokenizer (or a tiny BPE trained on the spot) and packed contexts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmfoundry_lite.objectives.special_ids import SpecialIds, resolve_special_ids

ASSET = Path(__file__).resolve().parents[1] / "assets" / "tokenizer"

UNICODE_DOCS = [
    "# Grüße aus Köln — ünïcödé in comments\ndef grüße(name: str) -> str:\n    return f'Hallo, {name}! ✓'\n",
    '// 日本語のコメント\nint main(void) { puts("こんにちは世界"); return 0; }\n',
    "emoji = '🐍🚀✨'  # astral-plane characters take four UTF-8 bytes\nprint(len(emoji))\n",
]


def _train_tiny_tokenizer():  # used only when the committed test tokenizer is missing
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from llmfoundry_lite.tokenizer.special import special_tokens

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=special_tokens(num_reserved=0),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_texts(), trainer)
    tok.encode_special_tokens = True
    return tok


def corpus_texts() -> list[str]:
    """Real source files (the json package of this Python) plus hand-written non-ASCII documents."""
    root = Path(json.__file__).parent
    return [p.read_text(encoding="utf-8") for p in sorted(root.glob("*.py"))] + UNICODE_DOCS * 3


@pytest.fixture(scope="session")
def tokenizer():
    if (ASSET / "tokenizer.json").is_file():
        from llmfoundry_lite.tokenizer.io import load_tokenizer

        return load_tokenizer(ASSET)
    return _train_tiny_tokenizer()


@pytest.fixture(scope="session")
def special(tokenizer) -> SpecialIds:
    return resolve_special_ids(tokenizer)


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids


@pytest.fixture(scope="session")
def stream(tokenizer, special) -> np.ndarray:
    """The corpus packed as one stream: each document's tokens followed by end-of-text."""
    ids: list[int] = []
    for text in corpus_texts():
        ids += encode(tokenizer, text) + [special.eos]
    return np.asarray(ids, dtype=np.int32)


def contexts(stream: np.ndarray, max_seq_len: int, count: int, stride: int) -> list[np.ndarray]:
    """``count`` windows of ``max_seq_len`` tokens at ``stride`` offsets (wrapping), like packed samples."""
    out = []
    for i in range(count):
        start = (i * stride) % (len(stream) - max_seq_len)
        out.append(stream[start : start + max_seq_len].copy())
    return out


def padded(ids: list[int], max_seq_len: int, pad_id: int) -> np.ndarray:
    """A final partial sample: ``ids`` then padding up to ``max_seq_len``."""
    return np.asarray(ids + [pad_id] * (max_seq_len - len(ids)), dtype=np.int32)
