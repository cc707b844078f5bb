"""One completion choice as it grows: tokens in, released text out, and why it finished.

Text is decoded incrementally from each token's raw bytes (byte-level BPE, the table FIM
uses), so one token costs one small decode, never a re-decode of the whole completion.
Released text never contains a stop sequence, and text that could still turn out to be the
start of one is held back until the next tokens decide it (OpenAI streams behave this way).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from tokenizers import Tokenizer

from llmfoundry_lite.objectives.token_bytes import token_byte_table


def decode_table(tokenizer: Tokenizer) -> list[bytes | None]:
    """Bytes of every token id; None for added (special) tokens, which decoding skips."""
    added = set(tokenizer.get_added_tokens_decoder())
    is_added = [i in added for i in range(tokenizer.get_vocab_size(with_added_tokens=True))]
    return token_byte_table(tokenizer, is_added)


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


@dataclass
class Choice:
    """Generation state of one choice: its tokens, its text, its end."""

    index: int
    max_tokens: int
    eos_id: int
    text: StopText
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None

    def push(self, token_id: int) -> Delta:
        """Account one generated token; the returned delta finishes the choice when it ended here."""
        self.tokens.append(token_id)
        if token_id == self.eos_id:
            self.finish_reason = "stop"
            return Delta(self.index, self.text.flush(), [token_id], "stop")
        released, stopped = self.text.feed(token_id)
        if stopped:
            self.finish_reason = "stop"
        elif len(self.tokens) >= self.max_tokens:
            self.finish_reason = "length"
            released += self.text.flush()
        return Delta(self.index, released, [token_id], self.finish_reason)
