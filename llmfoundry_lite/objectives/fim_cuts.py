"""Cutting one fragment into prefix / middle / suffix at character positions.

Only the text near each cut is re-encoded: ``WINDOW`` original tokens on either side of a
cut (widened to the nearest character boundary) are decoded and encoded again, split at
the cut, and every token further away is kept as it was. Pre-tokenization splits text
locally, so this gives the tokens that encoding each part on its own would give (the tests
measure how often) without decoding or re-encoding whole documents: character positions
are found from per-token counts of character-starting bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmfoundry_lite.objectives.token_bytes import TokenBytes, TokenPieces, peel_partial_chars

WINDOW = 8
"""Original tokens re-encoded on each side of a cut."""

Segment = np.ndarray | bytes
"""A run of original token ids kept as they are, or bytes (whole characters) to encode."""


@dataclass(frozen=True)
class FragmentCut:
    """A fragment's prefix, middle and suffix as segments, in document order."""

    prefix: list[Segment]
    middle: list[Segment]
    suffix: list[Segment]


class _Offsets:
    """Byte and character positions of the token boundaries of one run of token ids."""

    def __init__(self, ids: np.ndarray, tb: TokenBytes) -> None:
        self.ids = ids
        self.tb = tb
        self.bytes = np.zeros(len(ids) + 1, dtype=np.int64)
        self.bytes[1:] = np.cumsum(tb.lengths[ids])
        self.chars = np.zeros(len(ids) + 1, dtype=np.int64)
        self.chars[1:] = np.cumsum(tb.char_starts[ids])

    def byte_of_char(self, c: int) -> int:
        """Byte offset where character ``c`` starts (the end for ``c`` = number of characters)."""
        if c >= self.chars[-1]:
            return int(self.bytes[-1])
        t = int(self.chars.searchsorted(c, side="right")) - 1  # the token holding that character start
        want = c - int(self.chars[t])
        for j, byte in enumerate(self.tb.table[int(self.ids[t])] or b""):
            if byte & 0xC0 != 0x80:
                if want == 0:
                    return int(self.bytes[t]) + j
                want -= 1
        raise RuntimeError(f"character {c} not found in token {t}")  # unreachable: counts come from the same bytes

    def starts_char(self, i: int) -> bool:
        """Whether token boundary ``i`` is also a character boundary."""
        return i >= len(self.ids) or bool(self.tb.first_starts_char[self.ids[i]])

    def boundary_before(self, pos: int, window: int) -> int:
        """Token boundary at least ``window`` tokens before byte ``pos`` that starts a character (or 0)."""
        i = int(self.bytes.searchsorted(pos, side="right")) - 1 - window
        while i > 0 and not self.starts_char(i):
            i -= 1
        return max(i, 0)

    def boundary_after(self, pos: int, window: int) -> int:
        """Token boundary at least ``window`` tokens after byte ``pos`` that starts a character (or the end)."""
        i = int(self.bytes.searchsorted(pos, side="left")) + window
        while i < len(self.ids) and not self.starts_char(i):
            i += 1
        return min(i, len(self.ids))

    def slice_bytes(self, lo: int, hi: int) -> bytes:
        """Bytes ``[lo, hi)`` of the run (joined from the few tokens that cover them)."""
        first = int(self.bytes.searchsorted(lo, side="right")) - 1
        last = int(self.bytes.searchsorted(hi, side="left"))
        data = b"".join(self.tb.table[int(i)] or b"" for i in self.ids[first:last])
        start = lo - int(self.bytes[first])
        return data[start : start + hi - lo]


def cut_fragment(
    ids: np.ndarray, token_bytes: TokenBytes, cuts: tuple[float, float], window: int = WINDOW
) -> FragmentCut | None:
    """Cut a fragment (token ``ids``, none special) at two character positions.

    ``cuts`` are two numbers in [0, 1) mapped to positions in ``[0, number of characters]``, so
    both cut points are uniform over characters. Tokens holding part of a character at either
    end (a fragment cut by packing) stay, unchanged, at the start of the prefix / end of the
    suffix. Returns None when more than a few tokens at an edge hold partial characters.
    """
    peel = peel_partial_chars(TokenPieces(token_bytes.table, ids))
    if peel is None:
        return None
    head, tail = peel
    core = ids[head : len(ids) - tail]
    off = _Offsets(core, token_bytes)
    n_chars = int(off.chars[-1])
    a, b = sorted(int(u * (n_chars + 1)) for u in cuts)
    A, B = off.byte_of_char(a), off.byte_of_char(b)
    ia, ja = off.boundary_before(A, window), off.boundary_after(A, window)
    ib, jb = off.boundary_before(B, window), off.boundary_after(B, window)
    if ja <= ib:  # the windows around the two cuts do not overlap: keep the tokens between them
        middle: list[Segment] = [
            off.slice_bytes(A, int(off.bytes[ja])),
            core[ja:ib],
            off.slice_bytes(int(off.bytes[ib]), B),
        ]
    else:
        middle = [off.slice_bytes(A, B)]
    return FragmentCut(
        prefix=[ids[:head], core[:ia], off.slice_bytes(int(off.bytes[ia]), A)],
        middle=middle,
        suffix=[off.slice_bytes(B, int(off.bytes[jb])), core[jb:], ids[len(ids) - tail :]],
    )
