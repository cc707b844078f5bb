"""One completion choice as it grows: tokens in, released text out, and why it finished.

Text is decoded incrementally from each token's raw bytes (byte-level BPE, the table FIM
uses), so one token costs one small decode, never a re-decode of the whole completion.
Released text never contains a stop sequence, and text that could still turn out to be the
start of one is held back until the next tokens decide it (OpenAI streams behave this way).

Scoring (``logprobs``, ``echo``) follows OpenAI's legacy completions: every token, EOS and the
token that completed a stop sequence included, gets its log-probability under the model's raw
distribution (before temperature and top_p), its ``top_logprobs`` and its ``text_offset``: the
number of characters the tokens before it decoded to. A character split across tokens belongs
to the token that completes it, and a token whose bytes are not whole characters is named
``bytes:\\xNN…`` (OpenAI's convention), so ``text[text_offset[i]:text_offset[i + 1]]`` is exactly
what token i added. Offsets past a stop sequence point at or past the end of the returned text.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any

from tokenizers import Tokenizer

from llmfoundry_lite.objectives.token_bytes import token_byte_table


def decode_table(tokenizer: Tokenizer) -> list[bytes | None]:
    """Bytes of every token id; None for added (special) tokens, which decoding skips."""
    added = set(tokenizer.get_added_tokens_decoder())
    is_added = [i in added for i in range(tokenizer.get_vocab_size(with_added_tokens=True))]
    return token_byte_table(tokenizer, is_added)


def token_pieces(tokenizer: Tokenizer, table: list[bytes | None]) -> list[str]:
    """How ``logprobs`` names every token id: its text when its bytes are whole UTF-8 characters,
    ``bytes:\\xNN…`` when they are not, a special token's own name (it decodes to nothing)."""
    pieces = []
    for i, raw in enumerate(table):
        if raw is None:
            pieces.append(tokenizer.id_to_token(i) or "")
            continue
        try:
            pieces.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            pieces.append("bytes:" + "".join(f"\\x{b:02x}" for b in raw))
    return pieces


Score = tuple[float, list[tuple[int, float]]]
"""A token's log-probability and the top-k (token id, log-probability) pairs of its distribution."""


@dataclass
class Logprobs:
    """OpenAI's ``logprobs`` object of one choice, or of the tokens one delta adds to it."""

    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = field(default_factory=list)
    text_offset: list[int] = field(default_factory=list)

    def extend(self, other: Logprobs) -> None:
        self.tokens += other.tokens
        self.token_logprobs += other.token_logprobs
        self.top_logprobs += other.top_logprobs
        self.text_offset += other.text_offset

    def body(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "token_logprobs": self.token_logprobs, "top_logprobs": self.top_logprobs,
                "text_offset": self.text_offset}  # fmt: skip


class StopText:
    """Incremental UTF-8 text of a token stream, cut before the first stop sequence."""

    def __init__(self, table: list[bytes | None], stops: tuple[str, ...]) -> None:
        self._table = table
        self._stops = stops
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")  # same U+FFFD rule as tokenizers
        self._held = ""
        """Decoded text not released yet: the longest tail that may begin a stop sequence."""

    def feed(self, token_id: int) -> tuple[str, bool]:
        """Text released by one more token, and whether a stop sequence has now appeared."""
        piece = self._table[token_id]
        if piece is None:
            return "", False
        text = self._held + self._utf8.decode(piece)
        # A stop can only begin inside the held tail or the new text: everything before was released
        # because no stop could start there.
        hits = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        if hits:
            self._held = ""
            return text[: min(hits)], True
        keep = self._partial_stop_len(text)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep], False

    def flush(self) -> str:
        """Everything held back, once the stream has ended without a stop sequence."""
        text = self._held + self._utf8.decode(b"", final=True)
        self._held = ""
        return text

    def _partial_stop_len(self, text: str) -> int:
        """Length of the longest tail of ``text`` that is a proper prefix of some stop sequence."""
        best = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:k]):
                    best = k
                    break
        return best


@dataclass
class Delta:
    """What one choice produced since its last report; ``finish_reason`` is set on its last one."""

    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None = None
    error: str | None = None
    """Set when the engine failed; the request is then answered with a server error."""
    logprobs: Logprobs | None = None
    """Scores of this delta's tokens (echoed prompt tokens included) when the request asked for them."""

    def then(self, later: Delta) -> Delta:
        """This delta followed by ``later`` of the same choice, as one."""
        if self.logprobs is None or later.logprobs is None:
            logprobs = self.logprobs or later.logprobs
        else:
            logprobs = Logprobs()
            logprobs.extend(self.logprobs)
            logprobs.extend(later.logprobs)
        return Delta(self.index, self.text + later.text, self.token_ids + later.token_ids, later.finish_reason,
                     later.error, logprobs)  # fmt: skip


class Scorer:
    """Names, scores and text offsets of one choice's tokens, decoded the way ``StopText`` decodes them."""

    def __init__(self, table: list[bytes | None], pieces: list[str]) -> None:
        self._table, self._pieces = table, pieces
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.offset = 0
        """Characters decoded so far: where the next token's text starts."""

    def score(self, token_id: int, score: Score | None) -> Logprobs:
        """The ``logprobs`` entry of one token (``score`` None: the prompt's first token, which nothing predicts)."""
        offset = self.offset
        raw = self._table[token_id]
        self.offset += len(self._utf8.decode(raw)) if raw is not None else 0
        if score is None:
            return Logprobs([self._pieces[token_id]], [None], [None], [offset])
        logprob, top = score
        top_dict = {self._pieces[i]: lp for i, lp in top}
        top_dict.setdefault(self._pieces[token_id], logprob)  # OpenAI: up to k + 1 entries, the chosen one always
        return Logprobs([self._pieces[token_id]], [logprob], [top_dict], [offset])

    def end_prompt(self) -> None:
        """The echoed prompt's text is complete (a character it leaves open becomes U+FFFD): the
        completion's text starts on a character boundary, as its own decoding does."""
        self.offset += len(self._utf8.decode(b"", final=True))
        self._utf8.reset()


@dataclass
class Choice:
    """Generation state of one choice: its tokens, its text, its end, and its scores when asked for."""

    index: int
    max_tokens: int
    eos_id: int
    text: StopText
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    scorer: Scorer | None = None
    """Set when the request asked for ``logprobs``."""
    end_ids: frozenset[int] = frozenset()
    """Tokens besides ``eos_id`` that end the choice (``SamplingParams.end_ids``)."""

    def echo(self, prompt_ids: list[int], table: list[bytes | None], scores: list[Score] | None) -> Delta:
        """The prompt as the first delta of an ``echo`` request: its text, and with ``scores`` (those of
        prompt tokens 1.., as the prompt's first token has none) its logprobs. With ``max_tokens`` 0 the
        choice ends here."""
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = "".join(utf8.decode(table[i]) for i in prompt_ids if table[i] is not None) + utf8.decode(b"", True)
        logprobs = None
        if self.scorer is not None and scores is not None:
            logprobs = Logprobs()
            for token_id, score in zip(prompt_ids, [None, *scores], strict=True):
                logprobs.extend(self.scorer.score(token_id, score))
            self.scorer.end_prompt()
        if self.max_tokens == 0:
            self.finish_reason = "length"
        return Delta(self.index, text, [], self.finish_reason, logprobs=logprobs)

    def push(self, token_id: int, score: Score | None = None) -> Delta:
        """Account one generated token; the returned delta finishes the choice when it ended here."""
        self.tokens.append(token_id)
        logprobs = self.scorer.score(token_id, score) if self.scorer is not None and score is not None else None
        if token_id == self.eos_id or token_id in self.end_ids:
            self.finish_reason = "stop"
            return Delta(self.index, self.text.flush(), [token_id], "stop", logprobs=logprobs)
        released, stopped = self.text.feed(token_id)
        if stopped:
            self.finish_reason = "stop"
        elif len(self.tokens) >= self.max_tokens:
            self.finish_reason = "length"
            released += self.text.flush()
        return Delta(self.index, released, [token_id], self.finish_reason, logprobs=logprobs)
