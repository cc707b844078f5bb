"""Context-level fill-in-the-middle with character-level cut points (Bavarian et al. 2022).

The packed context is split on end-of-text into fragments; each non-empty fragment is
transformed with probability ``fim_rate`` into

* PSM: ``<fim_prefix> P <fim_suffix> S <fim_middle> M <eos>``
* SPM: ``<fim_prefix> <fim_suffix> S <fim_middle> P M <eos>`` (probability ``spm_rate``)

where P, M, S are the fragment's text cut at two character positions drawn uniformly, and
each part is encoded on its own (only the few tokens around each cut actually change, so
only those are re-encoded: see ``fim_cuts``). Untouched fragments keep their original token
ids. Loss covers every token except padding; every end-of-text is trained.

Context edges. A transformed fragment grows by its sentinels (and a token or two from
encoding the parts apart), which pushes the end of the context out. A transformed
fragment is never cut: if it no longer fits in what is left of ``max_seq_len``, its
*source* is shortened at its end (exactly as packing would have cut it) and the shorter
fragment is transformed, so its middle stays whole and ends in end-of-text; if even that
fails it stays plain and is cut at the context edge like any packed document
(``fim_skipped_budget``). Fragments cut by packing mid-character keep the partial-character
tokens unchanged at the start of P / end of S; text that would not re-encode to the same
bytes is left plain and counted (``fim_skipped_roundtrip``, ``fim_skipped_utf8``), as is a
fragment holding a special token such as padding (``fim_skipped_special``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llmfoundry_lite.objectives.config import FIMConfig
from llmfoundry_lite.objectives.fim_cuts import WINDOW, Segment, cut_fragment
from llmfoundry_lite.objectives.special_ids import SpecialIds
from llmfoundry_lite.objectives.token_bytes import TokenBytes, token_byte_table

if TYPE_CHECKING:
    from tokenizers import Tokenizer

IGNORE_INDEX = -100
FIM_OVERHEAD = 4
"""Tokens a transformed fragment adds at least: three sentinels and the closing end-of-text."""
SHORTEN_SLACK = 4
"""Extra tokens left free when a fragment is shortened to fit, for re-encoding at the two cuts."""


@dataclass(frozen=True)
class Fragment:
    """Tokens ``[start, end)`` of a context between end-of-text tokens; ``has_eos``: followed by one."""

    start: int
    end: int
    has_eos: bool


def content_length(tokens: np.ndarray, pad_id: int) -> int:
    """Length of ``tokens`` without trailing padding."""
    nonpad = np.flatnonzero(tokens != pad_id)
    return int(nonpad[-1]) + 1 if len(nonpad) else 0


def split_fragments(content: np.ndarray, eos_id: int) -> list[Fragment]:
    """Fragments between end-of-text tokens; the last one lacks an EOS when packing cut it."""
    eos_pos = np.flatnonzero(content == eos_id)
    starts = np.concatenate([[0], eos_pos + 1])
    frags = [Fragment(int(s), int(e), True) for s, e in zip(starts[:-1], eos_pos, strict=True)]
    if len(content) > starts[-1]:
        frags.append(Fragment(int(starts[-1]), len(content), False))
    return frags


def eos_segment_ids(tokens: np.ndarray, eos_id: int, pad_id: int) -> np.ndarray:
    """Segment ids (int64) of a packed context: 1, 2, 3, ... per document, 0 on padding.

    A document runs up to and including its closing end-of-text (the layout of untouched
    contexts: next-token and UL2's too-short fallback).
    """
    is_eos = (tokens == eos_id).astype(np.int64)
    doc = np.cumsum(is_eos) - is_eos + 1  # the EOS still belongs to the document it closes
    return np.where(tokens == pad_id, 0, doc).astype(np.int64)


def next_token(tokens: np.ndarray, pad_id: int, eos_id: int) -> dict[str, np.ndarray]:
    """Plain causal LM: labels are the inputs (the model shifts), padding masked out; each
    document, up to and including its end-of-text, is one segment."""
    input_ids = tokens.astype(np.int64)
    labels = input_ids.copy()
    labels[input_ids == pad_id] = IGNORE_INDEX
    return {"input_ids": input_ids, "labels": labels, "segment_ids": eos_segment_ids(input_ids, eos_id, pad_id)}


def pad_to_length(pieces: list[np.ndarray], max_seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    """Concatenate, pad to ``max_seq_len``; labels equal the inputs except -100 on padding.

    ``segment_ids`` number the non-empty pieces 1, 2, 3, ... (0 on padding): each piece is one
    document for attention, whatever end-of-text tokens it holds or lacks.
    """
    body = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, dtype=np.int64)
    if len(body) > max_seq_len:
        raise RuntimeError(f"objective produced {len(body)} tokens > max_seq_len={max_seq_len}")
    input_ids = np.full(max_seq_len, pad_id, dtype=np.int64)
    input_ids[: len(body)] = body
    labels = np.full(max_seq_len, IGNORE_INDEX, dtype=np.int64)
    labels[: len(body)] = body
    lengths = np.array([len(p) for p in pieces if len(p)], dtype=np.int64)
    segment_ids = np.zeros(max_seq_len, dtype=np.int64)
    segment_ids[: len(body)] = np.repeat(np.arange(1, len(lengths) + 1), lengths)
    return {"input_ids": input_ids, "labels": labels, "segment_ids": segment_ids}


class FIM:
    """The FIM objective: ``fim(tokens, rng) -> {"input_ids", "labels", "segment_ids"}`` for one packed context.

    Each placed fragment (transformed or plain) is its own segment.
    """

    def __init__(self, cfg: FIMConfig, tokenizer: Tokenizer, special: SpecialIds, max_seq_len: int) -> None:
        self.fim_rate = cfg.fim_rate
        self.spm_rate = cfg.spm_rate
        self.tokenizer = tokenizer
        self.special = special
        self.max_seq_len = max_seq_len
        self.table = token_byte_table(tokenizer, list(special.is_special))
        self.token_bytes = TokenBytes(self.table)
        self.spelling = [b"\xff" if piece is None else piece for piece in self.table]
        self.sentinel_arrays = tuple(
            np.array([i], dtype=np.int64)
            for i in (special.fim_prefix, special.fim_middle, special.fim_suffix, special.eos)
        )
        self.window = WINDOW
        self.counts: Counter[str] = Counter()
        """Running tallies (per process): fragments seen / transformed / skipped and why, tokens dropped."""

    def __call__(self, tokens: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        n = content_length(tokens, self.special.pad)
        frags = split_fragments(tokens[:n], self.special.eos)
        # One row per fragment: [transform?, spm?, cut 1, cut 2]; fixed shape keeps draws reproducible.
        draws = rng.random((len(frags), 4))
        out: list[np.ndarray] = []
        used = 0
        for frag, draw in zip(frags, draws, strict=True):
            piece = self._place(tokens, frag, draw, self.max_seq_len - used)
            out.append(piece)
            used += len(piece)
        return pad_to_length(out, self.max_seq_len, self.special.pad)

    def _place(self, tokens: np.ndarray, frag: Fragment, draw: np.ndarray, budget: int) -> np.ndarray:
        """The tokens one fragment contributes within ``budget``; see the module docstring for the edge rules."""
        ids = tokens[frag.start : frag.end]
        plain = tokens[frag.start : frag.end + frag.has_eos]
        self.counts["fragments"] += len(ids) > 0
        form = None
        if len(ids) > 0 and draw[0] < self.fim_rate:
            self.counts["fim_chosen"] += 1
            form, kept = self._fit(ids, draw, budget)
            if form is not None:
                self.counts["fim_applied"] += 1
                self.counts["fim_spm" if draw[1] < self.spm_rate else "fim_psm"] += 1
                self.counts["fim_shortened"] += kept < len(ids)
                self.counts["tokens_dropped"] += len(plain) - kept
                return form
        piece = plain[: max(budget, 0)]
        self.counts["tokens_dropped"] += len(plain) - len(piece)
        return piece

    def _fit(self, ids: np.ndarray, draw: np.ndarray, budget: int) -> tuple[np.ndarray | None, int]:
        """The FIM form of ``ids`` (shortened at its end if needed) within ``budget``, and the source tokens used."""
        keep = min(len(ids), budget - FIM_OVERHEAD - SHORTEN_SLACK) if len(ids) + FIM_OVERHEAD > budget else len(ids)
        for _ in range(4):  # re-encoding near the cuts changes the length by a token or two; retry if over
            if keep < 1:
                break
            form = self._form(ids[:keep], draw)
            if form is None:
                return None, 0
            if len(form) <= budget:
                return form, keep
            keep -= len(form) - budget
        self.counts["fim_skipped_budget"] += 1
        return None, 0

    def _form(self, ids: np.ndarray, draw: np.ndarray) -> np.ndarray | None:
        """``ids`` transformed into PSM or SPM order; None (counted) if they cannot be cut or re-encoded."""
        if self.special.is_special[ids].any():
            self.counts["fim_skipped_special"] += 1
            return None
        cut = cut_fragment(ids, self.token_bytes, (draw[2], draw[3]), self.window)
        if cut is None:
            self.counts["fim_skipped_utf8"] += 1
            return None
        parts = [self._tokens(part) for part in (cut.prefix, cut.middle, cut.suffix)]
        if parts[0] is None or parts[1] is None or parts[2] is None:
            self.counts["fim_skipped_roundtrip"] += 1
            return None
        return self._layout(parts[0], parts[1], parts[2], spm=draw[1] < self.spm_rate)

    def _tokens(self, part: list[Segment]) -> np.ndarray | None:
        """Token ids of one part: kept runs as they are, byte windows encoded.

        None if a window is not valid UTF-8, or its new tokens do not spell exactly its bytes (a
        tokenizer that matches special-token strings in text would turn data into control tokens;
        special ids spell 0xFF, which never occurs in UTF-8, so they always fail this check).
        """
        out: list[np.ndarray] = []
        for seg in part:
            if not isinstance(seg, bytes):
                out.append(seg)
            elif seg:
                try:
                    text = seg.decode("utf-8")
                except UnicodeDecodeError:
                    return None
                new = self.tokenizer.encode(text, add_special_tokens=False).ids
                if b"".join([self.spelling[i] for i in new]) != seg:
                    return None
                out.append(np.asarray(new, dtype=np.int64))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def _layout(self, prefix: np.ndarray, middle: np.ndarray, suffix: np.ndarray, *, spm: bool) -> np.ndarray:
        pre, mid, suf, eos = self.sentinel_arrays
        if spm:
            return np.concatenate([pre, suf, suffix, mid, prefix, middle, eos])
        return np.concatenate([pre, prefix, suf, suffix, mid, middle, eos])
