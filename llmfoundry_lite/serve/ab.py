"""A/B tests between the variants one server holds (``--ab NAME=WEIGHT``, repeatable).

A variant is a model the server serves: the base (``--model-name``) or one of its LoRA adapters
(``--lora NAME=PATH``). A request that names no model, or the server's default name, is assigned
a variant: with a ``user`` id, by a stable hash of it, so each user sees one variant for as long as
the split stands — across requests, restarts and replicas, since the hash has no state and no
seed but the experiment name; without one, at random. A request that names a variant gets it.

The hash maps a user to a point ``u`` in [0, 1) and the variants own consecutive intervals of
[0, 1) as wide as their weights (in ``--ab`` order). Raising one weight therefore moves only the
users near the boundaries it shifts; renaming ``--ab-experiment`` reshuffles everyone.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate


def parse_ab(specs: tuple[str, ...] | list[str]) -> dict[str, float]:
    """``--ab NAME=WEIGHT`` flags as name → weight; ValueError on a malformed value, a repeated name or
    a weight that is not a positive number."""
    weights: dict[str, float] = {}
    for spec in specs:
        name, sep, weight = spec.partition("=")
        name = name.strip()
        try:
            value = float(weight)
        except ValueError:
            value = float("nan")
        if not sep or not name or not value > 0 or value == float("inf"):
            raise ValueError(f"--ab takes NAME=WEIGHT with a positive weight (e.g. --ab base=0.5), got {spec!r}")
        if name in weights:
            raise ValueError(f"--ab names {name!r} twice; give each variant one weight")
        weights[name] = value
    return weights


@dataclass(frozen=True)
class ABSplit:
    """Traffic weights over variants and the sticky assignment of users to them."""

    weights: dict[str, float]
    """Variant name → weight (any positive scale; normalised here)."""
    experiment: str = "ab"
    """Salts the user hash (``--ab-experiment``): a new name starts a new, independent assignment."""

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("an A/B split needs at least one --ab NAME=WEIGHT")
        total = sum(self.weights.values())
        bounds = [w / total for w in accumulate(self.weights.values())]
        bounds[-1] = 1.0  # float sums may fall short of 1 by an ulp; the last interval ends at 1 exactly
        object.__setattr__(self, "_names", list(self.weights))
        object.__setattr__(self, "_bounds", bounds)

    def check_served(self, served: list[str]) -> None:
        """Every variant must be a model the server serves (the base name or an adapter's)."""
        unknown = [name for name in self.weights if name not in served]
        if unknown:
            raise ValueError(f"--ab names {unknown}, which this server does not serve; it serves {served} "
                             "(--model-name and --lora NAME=PATH)")  # fmt: skip

    def point(self, user: str) -> float:
        """``user``'s fixed point in [0, 1): the first 8 bytes of SHA-256(experiment, user)."""
        digest = hashlib.sha256(f"{self.experiment}\0{user}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def assign(self, user: str | None) -> str:
        """The variant for a request of ``user`` (None: a fresh random draw, as there is nothing to stick to)."""
        u = self.point(user) if user is not None else random.random()
        return self._names[bisect_right(self._bounds, u)]


def route(model: str | None, user: str | None, default: str, split: ABSplit | None) -> tuple[str, str]:
    """(model to serve, how it was chosen) for a request naming ``model`` (None: no ``model`` field)."""
    if split is not None and (model is None or model == default):
        return split.assign(user), "ab"
    return (default if model is None else model), ("default" if split is None else "requested")
