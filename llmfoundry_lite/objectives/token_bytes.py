"""Exact bytes behind byte-level BPE token ids, and UTF-8 edge handling.

A packed context is cut at token boundaries, and a byte-level BPE token can hold
part of a multi-byte character, so a fragment may start or end mid-character.
``ByteLevel`` decoding would turn those bytes into U+FFFD and re-encoding would
then change the text; working from raw bytes avoids that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MAX_PEEL = 4
"""At most this many tokens are set aside at each end of a fragment to reach a character boundary."""


def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte, inverted: character -> byte value."""
    kept = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = {b: chr(b) for b in kept}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in chars.items()}


def token_byte_table(tokenizer: Tokenizer, is_special: list[bool] | None = None) -> list[bytes | None]:
    """Bytes of every vocabulary id (None for special tokens); needs a byte-level BPE vocabulary."""
    alphabet = byte_level_alphabet()
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    table: list[bytes | None] = [None] * size
    for token, token_id in tokenizer.get_vocab(with_added_tokens=True).items():
        if is_special is not None and is_special[token_id]:
            continue
        try:
            table[token_id] = bytes(alphabet[c] for c in token)
        except KeyError as err:
            raise ValueError(
                f"token {token!r} (id {token_id}) is not byte-level BPE; FIM needs a ByteLevel tokenizer"
            ) from err
    return table


def _ends_mid_char(data: bytes) -> bool:
    """True if ``data`` ends inside a multi-byte UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): how long should its sequence be?
            need = 1 if byte < 0x80 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return back < need
    return False  # only continuation bytes: invalid, strict decoding reports it


def peel_partial_chars(pieces: Sequence[bytes]) -> tuple[int, int] | None:
    """Tokens to set aside at the start and end so the rest starts and ends on character boundaries.

    ``pieces`` are the bytes of each token. Returns ``(head, tail)`` counts, or None when more than
    ``MAX_PEEL`` tokens would be needed at either end or nothing would remain.
    """
    head = 0
    while head < len(pieces) and pieces[head][0] & 0xC0 == 0x80:
        head += 1
    tail = 0
    end = len(pieces)
    while end - tail > head and _ends_mid_char(b"".join(pieces[max(head, end - tail - 4) : end - tail])):
        # the kept bytes end mid-character: peel the last kept token and look again
        tail += 1
        if tail > MAX_PEEL:
            return None
    if head > MAX_PEEL or head + tail >= len(pieces):
        return None
    return head, tail


class TokenBytes:
    """The bytes of every token id in one buffer, so a token run's bytes are one vectorised gather."""

    def __init__(self, table: list[bytes | None]) -> None:
        self.table = table
        self.lengths = np.array([0 if b is None else len(b) for b in table], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.blob = np.frombuffer(b"".join(b or b"" for b in table), dtype=np.uint8)
        # Per id: how many of its bytes start a character, and whether its first byte does.
        self.char_starts = np.array([sum(x & 0xC0 != 0x80 for x in b or b"") for b in table], dtype=np.int64)
        self.first_starts_char = np.array([bool(b) and b[0] & 0xC0 != 0x80 for b in table], dtype=bool)

    def join(self, ids: np.ndarray) -> bytes:
        """The bytes ``ids`` spell (special ids spell nothing)."""
        lens = self.lengths[ids]
        out_starts = np.cumsum(lens) - lens
        # byte k of the output comes from blob[start of its token + (k - where that token starts in the output)]
        index = np.repeat(self.starts[ids] - out_starts, lens) + np.arange(int(lens.sum()))
        return self.blob[index].tobytes()


class TokenPieces(Sequence[bytes]):
    """Per-token bytes of ``ids``, looked up only where indexed (the edges, for ``peel_partial_chars``)."""

    def __init__(self, table: list[bytes | None], ids: np.ndarray) -> None:
        self.table = table
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):  # type: ignore[override]  # int -> bytes, slice -> list[bytes]
        if isinstance(i, slice):
            return [self.table[j] for j in self.ids[i].tolist()]
        return self.table[int(self.ids[i])]
