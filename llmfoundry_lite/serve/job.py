"""What an engine is asked to do: a prompt's token ids, how many choices, how to sample them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llmfoundry_lite.serve.choice import Choice, Delta, StopText


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

    def start(self, table: list[bytes | None], eos_id: int) -> list[Choice]:
        """Fresh generation state for each of the ``n`` choices."""
        self.choices = [Choice(i, self.params.max_tokens, eos_id, StopText(table, self.params.stop))
                        for i in range(self.n)]  # fmt: skip
        return self.choices


class EngineBusy(RuntimeError):
    """The queue is full; the server answers 429 and the client retries later."""
