"""What an engine is asked to do: a prompt's token ids, how many choices, how to sample them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llmfoundry_lite.serve.choice import Choice, Delta, Scorer, StopText


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling settings, already checked by ``protocol``."""

    max_tokens: int
    temperature: float = 0.0
    """0 is greedy (argmax)."""
    top_p: float = 1.0
    seed: int | None = None
    """Choice i samples from a generator seeded ``seed + i``: the same request gives the same
    texts however it was batched with others. None draws from torch's global generator."""
    stop: tuple[str, ...] = ()
    logprobs: int | None = None
    """Report each token's log-probability and this many top alternatives (None: no scores)."""
    echo: bool = False
    """Start each choice with the prompt (its text, and its scores when ``logprobs`` is set)."""
    end_ids: frozenset[int] = frozenset()
    """Token ids that end a choice as EOS does (the FIM template's end tokens on ``suffix`` requests)."""


@dataclass
class Job:
    """One request inside an engine. ``sink`` receives every ``Delta``; it is called from the
    engine's thread and must hand the delta over without blocking."""

    prompt_ids: list[int]
    n: int
    params: SamplingParams
    sink: Callable[[Delta], None]
    cancelled: bool = False
    """Set by the server when the client went away; the engine frees the job's slots."""
    choices: list[Choice] = field(default_factory=list)
    adapter: str | None = None
    """The served LoRA adapter this job runs on (``--lora`` NAME); None is the base model."""

    def start(self, table: list[bytes | None], eos_id: int, pieces: list[str] | None = None) -> list[Choice]:
        """Fresh generation state for each of the ``n`` choices; ``pieces`` (``choice.token_pieces``)
        names tokens in ``logprobs`` and is needed only when the request asked for them."""
        scored = self.params.logprobs is not None and pieces is not None
        self.choices = [Choice(i, self.params.max_tokens, eos_id, StopText(table, self.params.stop),
                               scorer=Scorer(table, pieces) if scored else None, end_ids=self.params.end_ids)
                        for i in range(self.n)]  # fmt: skip
        return self.choices


class EngineBusy(RuntimeError):
    """The queue is full; the server answers 429 and the client retries later."""


class EngineDead(RuntimeError):
    """The engine thread has ended; the server answers 503 until it is restarted."""
