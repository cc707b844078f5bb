"""Ids of the special tokens the objectives insert, resolved once from the tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llmfoundry_lite.tokenizer.special import (
    EOS,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    NUM_SENTINELS,
    PAD,
    UL2_MODES,
    sentinel,
)

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class SpecialIds:
    """Token ids of end-of-text, padding, FIM sentinels, UL2 modes and UL2 span sentinels."""

    eos: int
    pad: int
    fim_prefix: int
    fim_middle: int
    fim_suffix: int
    ul2_modes: dict[str, int]
    sentinels: tuple[int, ...]
    is_special: np.ndarray
    """Boolean per vocabulary id: True for every added special token (never produced from text)."""


def _require(tokenizer: Tokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ValueError(f"tokenizer has no {token!r} token; train it with data_prep/train_tokenizer.py")
    return token_id


def resolve_special_ids(tokenizer: Tokenizer) -> SpecialIds:
    """Look up every special id the objectives need; a missing token is a ValueError naming it."""
    is_special = np.zeros(tokenizer.get_vocab_size(with_added_tokens=True), dtype=bool)
    for token_id, added in tokenizer.get_added_tokens_decoder().items():
        if added.special:
            is_special[token_id] = True
    return SpecialIds(
        eos=_require(tokenizer, EOS),
        pad=_require(tokenizer, PAD),
        fim_prefix=_require(tokenizer, FIM_PREFIX),
        fim_middle=_require(tokenizer, FIM_MIDDLE),
        fim_suffix=_require(tokenizer, FIM_SUFFIX),
        ul2_modes={mode: _require(tokenizer, tok) for mode, tok in UL2_MODES.items()},
        sentinels=tuple(_require(tokenizer, sentinel(i)) for i in range(NUM_SENTINELS)),
        is_special=is_special,
    )
