"""Prompts tokenized the way training tokenized such text: trailing whitespace belongs to the generation.

The code tokenizer's pre-tokenizer keeps a line break together with the indentation after it
(``"\\n    "`` is one piece), so a HumanEval prompt, which ends in ``\\n``, encodes to a lone ``\\n``
token that training text almost never has before an indented line: every one of the 164 prompts
tokenized alone differs from the same prompt tokenized with its canonical solution after it.
bigcode-evaluation-harness strips the prompt for this reason.

Here generation starts from the prompt without its trailing whitespace (the *body*), and the
first generated tokens are constrained to reproduce the removed *tail* (token healing: a token
may come next only if it continues the tail or completes it, e.g. ``"\\n    "`` after a body
whose tail is ``"\\n"``). The program executed stays exactly ``prompt + completion``: the
completion is the generated text after the tail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class EncodedPrompt:
    """What is sent to the model for one prompt, and the text its generation must start with."""

    ids: list[int]
    tail: str
    """The prompt's trailing whitespace, left out of ``ids``; the generation reproduces it first."""

    def completion(self, generated: str) -> str:
        """The completion of the original prompt: ``generated`` (text after ``ids``) minus the tail;
        empty when generation ended (EOS, token budget) before the tail was complete."""
        return generated[len(self.tail) :] if generated.startswith(self.tail) else ""


def split_tail(text: str) -> tuple[str, str]:
    """``(body, tail)``: ``text`` without its trailing whitespace, and that whitespace."""
    body = text.rstrip()
    return body, text[len(body) :]


def encode_prompt(tokenizer: Tokenizer, prompt: str, before: Sequence[int] = (), after: Sequence[int] = ()) -> EncodedPrompt:
    """``before + tokens(body) + after`` with the prompt's tail to heal (``before``/``after``: e.g.
    FIM sentinels and the suffix around an infilling prefix)."""
    body, tail = split_tail(prompt)
    return EncodedPrompt([*before, *tokenizer.encode(body, add_special_tokens=False).ids, *after], tail)


class Healer:
    """Which tokens may come next while a generation is still reproducing its prompt's tail.

    A token fits when its text continues the rest of the tail (``"\\n"`` while ``"\\n    "`` remains)
    or starts with all of it (``"\\n    "`` when ``"\\n"`` remains). Special tokens (text ``""``)
    never fit, so EOS cannot end a sample before the tail is back.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        size = tokenizer.get_vocab_size()
        self.texts = tokenizer.decode_batch([[i] for i in range(size)], skip_special_tokens=True)
        self._masks: dict[str, torch.Tensor | None] = {}

    def fitting(self, rest: str) -> torch.Tensor | None:
        """Bool mask over the vocabulary of tokens that fit ``rest``; None when none does (left free)."""
        if rest not in self._masks:
            fit = [bool(t) and (t.startswith(rest) or rest.startswith(t)) for t in self.texts]
            self._masks[rest] = torch.tensor(fit) if any(fit) else None
        return self._masks[rest]

    def constraint(self, tail: str) -> Callable[[list[int]], torch.Tensor | None] | None:
        """For ``generate(allowed=...)``: a row's mask until its text holds the whole tail, then None."""
        if not tail:
            return None

        def allowed(new_tokens: list[int]) -> torch.Tensor | None:
            text = self.tokenizer.decode(new_tokens) if new_tokens else ""
            if len(text) >= len(tail) or not tail.startswith(text):
                return None
            return self.fitting(tail[len(text) :])

        return allowed


_HEALERS: dict[int, tuple[Tokenizer, Healer]] = {}


def healer_for(tokenizer: Tokenizer) -> Healer:
    """One ``Healer`` per tokenizer object (decoding the vocabulary once)."""
    known = _HEALERS.get(id(tokenizer))
    if known is None or known[0] is not tokenizer:
        known = _HEALERS[id(tokenizer)] = (tokenizer, Healer(tokenizer))
    return known[1]
