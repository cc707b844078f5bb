"""Special tokens shared by data prep, training objectives and evaluation.

Ids are assigned in this order from 0, so every tokenizer trained by this project
has the same layout: end-of-text 0, padding 1, the four FIM sentinels (StarCoder
spelling, underscores), the three UL2 mode tokens, ``NUM_SENTINELS`` UL2 span
sentinels, then ``reserved`` tokens for later use. None of these strings is ever
produced by encoding ordinary text: only training code inserts their ids.
"""

from __future__ import annotations

EOS = "<|endoftext|>"
PAD = "<|pad|>"
FIM_PREFIX = "<fim_prefix>"
FIM_MIDDLE = "<fim_middle>"
FIM_SUFFIX = "<fim_suffix>"
FIM_PAD = "<fim_pad>"
UL2_MODES = {"R": "<|ul2_r|>", "S": "<|ul2_s|>", "X": "<|ul2_x|>"}
NUM_SENTINELS = 100


def sentinel(i: int) -> str:
    """The i-th UL2 span sentinel (T5's ``<extra_id_i>`` role)."""
    return f"<|sentinel_{i}|>"


def reserved(i: int) -> str:
    """The i-th reserved token, held back for later use (chat roles, tools, …)."""
    return f"<|reserved_{i}|>"


def special_tokens(num_reserved: int) -> list[str]:
    """All special tokens in id order (id = position in this list)."""
    return (
        [EOS, PAD, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD]
        + list(UL2_MODES.values())
        + [sentinel(i) for i in range(NUM_SENTINELS)]
        + [reserved(i) for i in range(num_reserved)]
    )


def unused(i: int) -> str:
    """The i-th filler token, appended after the learned merges only when the training
    sample was too small to reach the requested vocabulary size."""
    return f"<|unused_{i}|>"
