"""Prompt-lookup drafts for greedy requests: guess the next tokens by copying what followed the
same n-gram earlier in the sequence (prompt + generated), then let one forward check them.

Code completion often copies: an edit repeats the function above it, a test repeats the call it
tests. Where the sequence's last n tokens appeared before, the tokens that followed them then are
a cheap guess of what follows now; where that copy reaches the present (the text is repeating
with a period shorter than the draft) it goes on repeating. The engine feeds the last token plus
up to ``max_draft`` guesses through one forward (``slots.verify``), keeps the longest prefix of
guesses equal to the model's own argmax, and adds the argmax after it, so the output is exactly
what plain greedy decoding gives, only in fewer forwards when the guesses are right. Sampled requests are never
drafted: accepting a draft token there would need rejection sampling to keep the distribution.

``NgramDrafter`` keeps, for every n-gram of length ``min_ngram..max_ngram``, where the token after
its latest occurrence sits, so adding a token costs ``max_ngram`` dictionary writes and a draft
costs ``max_ngram`` lookups, however long the sequence is. A wider forward is not free (on a CPU
a small model's forward over 9 tokens a row costs about twice one over 1), so each sequence
sizes its drafts by how the last one went: kept whole, the next may be twice as long (up to
``max_draft``); cut short after ``a`` kept tokens, the next is ``a + 1`` long; missed entirely, the
sequence also stops drafting for 1, 3, 7, ... steps (up to ``max_backoff``) until a draft is kept.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Speculation:
    """How greedy requests are drafted (``--speculative-*`` flags)."""

    max_draft: int = 8
    """Most tokens guessed per step; a step then emits up to ``max_draft + 1`` tokens."""
    max_ngram: int = 3
    """Longest suffix looked up; longer matches are tried first, as they predict better."""
    min_ngram: int = 2
    """Shortest suffix looked up; 1 drafts after any repeated token, which is often wrong."""
    max_backoff: int = 16
    """Most steps a sequence goes undrafted after its drafts missed entirely several times in a row:
    a rejected draft still costs a wider forward, which text that does not repeat should not pay."""

    def __post_init__(self) -> None:
        if self.max_draft < 1:
            raise ValueError(f"--speculative-draft must be at least 1, got {self.max_draft}")
        if self.max_backoff < 0:
            raise ValueError(f"max_backoff must be at least 0, got {self.max_backoff}")
        if not 1 <= self.min_ngram <= self.max_ngram:
            raise ValueError(f"--speculative-min-ngram ({self.min_ngram}) must be in 1..--speculative-ngram "
                             f"({self.max_ngram})")  # fmt: skip


class NgramDrafter:
    """The n-gram index of one growing sequence, and the draft it proposes."""

    def __init__(self, spec: Speculation, tokens: list[int]) -> None:
        self.spec = spec
        self.tokens: list[int] = []
        self._next: dict[tuple[int, ...], int] = {}
        """n-gram → index in ``tokens`` of the token that followed its latest occurrence."""
        self._size = spec.max_draft  # the next draft's length
        self._misses = 0  # drafts in a row of which nothing was kept
        self._pause = 0  # steps left without drafting
        self.extend(tokens)

    def extend(self, tokens: list[int]) -> None:
        """Append ``tokens`` to the sequence, indexing each n-gram they complete the follower of."""
        lo, hi = self.spec.min_ngram, self.spec.max_ngram
        seq = self.tokens
        for token in tokens:
            i = len(seq)  # ``token`` follows every n-gram ending just before it
            for n in range(lo, min(hi, i) + 1):
                self._next[tuple(seq[i - n : i])] = i
            seq.append(token)

    def draft(self, limit: int) -> list[int]:
        """Up to ``limit`` tokens that followed the latest earlier occurrence of the longest matching
        suffix (``max_ngram`` down to ``min_ngram``), copied on as a repetition where that copy
        reaches the present (``repeat_from``); empty when no suffix occurred before."""
        seq = self.tokens
        if self._pause > 0:
            self._pause -= 1
            return []
        limit = min(limit, self._size)
        if limit < 1:
            return []
        for n in range(min(self.spec.max_ngram, len(seq)), self.spec.min_ngram - 1, -1):
            start = self._next.get(tuple(seq[len(seq) - n :]))
            if start is not None:
                return repeat_from(seq, start, limit)
        return []

    def kept(self, accepted: int, drafted: int) -> None:
        """Report how many of the last draft's ``drafted`` tokens the model agreed with: this sizes
        the next draft, and whole misses pause drafting."""
        whole = accepted == drafted
        self._size = min(2 * self._size, self.spec.max_draft) if whole else accepted + 1
        self._misses = 0 if accepted else self._misses + 1
        self._pause = min(2**self._misses - 1, self.spec.max_backoff)


def repeat_from(seq: list[int], start: int, limit: int) -> list[int]:
    """``limit`` tokens copied from ``seq[start:]``, going on with the copy itself once it reaches the
    end of ``seq``: if what follows position ``start`` follows the end too, the text repeats with
    period ``len(seq) - start``. The latest occurrence of a suffix inside a loop (``x = [0, 0, 0, ...``,
    a function body emitted again and again) is one period back, often fewer tokens than a draft
    holds; stopping the copy at the end would cap every draft there at the period."""
    out = seq[start : start + limit]
    period = len(seq) - start
    while len(out) < limit:
        out.append(out[len(out) - period])
    return out
