"""Per-sample mixture of objectives with draws keyed on (seed, sample index, epoch)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from llmfoundry_lite.objectives.config import ObjectiveConfig
from llmfoundry_lite.objectives.fim import FIM, next_token
from llmfoundry_lite.objectives.special_ids import SpecialIds, resolve_special_ids
from llmfoundry_lite.objectives.ul2 import UL2, UL2_MIXTURES

if TYPE_CHECKING:
    from tokenizers import Tokenizer

Transform = Callable[[np.ndarray, np.random.Generator], dict[str, np.ndarray]]


def sample_rng(seed: int, sample_index: int, epoch: int, salt: int = 0) -> np.random.Generator:
    """A generator that depends only on its arguments, never on call order or worker.

    The mixture draws one number from it to pick the sample's objective, then hands the same
    generator to that objective; ``salt`` separates other uses of the same sample.
    """
    return np.random.default_rng([seed, epoch, sample_index, salt])


class NextToken:
    """The next-token objective as a ``Transform`` (takes and ignores the generator)."""

    def __init__(self, pad_id: int, eos_id: int) -> None:
        self.pad_id = pad_id
        self.eos_id = eos_id
        self.counts: Counter[str] = Counter()

    def __call__(self, tokens: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return next_token(tokens, self.pad_id, self.eos_id)


def _build_next_token(cfg: ObjectiveConfig, tokenizer: Tokenizer, special: SpecialIds, max_seq_len: int) -> NextToken:
    return NextToken(special.pad, special.eos)


def _build_fim(cfg: ObjectiveConfig, tokenizer: Tokenizer, special: SpecialIds, max_seq_len: int) -> FIM:
    return FIM(cfg.fim, tokenizer, special, max_seq_len)


def _build_ul2(cfg: ObjectiveConfig, tokenizer: Tokenizer, special: SpecialIds, max_seq_len: int) -> UL2:
    return UL2(UL2_MIXTURES[cfg.ul2.mixture], special, max_seq_len)


OBJECTIVES: dict[str, Callable[[ObjectiveConfig, Tokenizer, SpecialIds, int], Transform]] = {
    "next_token": _build_next_token,
    "fim": _build_fim,
    "ul2": _build_ul2,
}


class Objective:
    """Applies the configured mixture to packed samples: ``objective(tokens, sample_index, epoch)``."""

    def __init__(self, cfg: ObjectiveConfig, tokenizer: Tokenizer, special: SpecialIds, max_seq_len: int) -> None:
        mixture = cfg.mixture
        names = list(mixture)
        self.names = names
        self.cum_probs = np.cumsum([mixture[n] for n in names])
        self.cum_probs[-1] = 1.0  # a draw in [0, 1) always lands on an objective
        self.seed = cfg.seed
        self.max_seq_len = max_seq_len
        self.special = special  # the tokenizer's ids (pad, eos, ...) for whoever reads this objective's samples
        self.prefix_lm = cfg.prefix_lm
        self.transforms: dict[str, Transform] = {n: OBJECTIVES[n](cfg, tokenizer, special, max_seq_len) for n in names}

    def _draw(self, sample_index: int, epoch: int) -> tuple[str, np.random.Generator]:
        """The sample's generator and, from its first draw, the sample's objective."""
        rng = sample_rng(self.seed, sample_index, epoch)
        return self.names[int(np.searchsorted(self.cum_probs, rng.random(), side="right"))], rng

    def choose(self, sample_index: int, epoch: int) -> str:
        """The objective of one sample (a pure function of seed, index and epoch)."""
        return self._draw(sample_index, epoch)[0]

    def __call__(self, tokens: np.ndarray, sample_index: int, epoch: int) -> dict[str, np.ndarray]:
        if len(tokens) != self.max_seq_len:
            raise ValueError(f"sample {sample_index} has {len(tokens)} tokens, expected max_seq_len={self.max_seq_len}")
        name, rng = self._draw(sample_index, epoch)
        out = self.transforms[name](tokens, rng)
        # Batches are collated key by key, so either every sample carries prefix_len or none does.
        if self.prefix_lm:
            out.setdefault("prefix_len", np.array(0, dtype=np.int64))
        else:
            out.pop("prefix_len", None)
        return out

    def counts(self) -> dict[str, Counter[str]]:
        """Per-objective tallies accumulated in this process (skips, drops, denoisers used)."""
        return {name: t.counts for name, t in self.transforms.items()}  # type: ignore[attr-defined]


def build_objective(cfg: ObjectiveConfig, tokenizer: Tokenizer, max_seq_len: int) -> Objective:
    """The loader-side objective for a training run (``tokenizer``: a ``tokenizers.Tokenizer``)."""
    if max_seq_len < 16:
        raise ValueError(f"max_seq_len={max_seq_len} is too short for the objectives (need >= 16)")
    return Objective(cfg, tokenizer, resolve_special_ids(tokenizer), max_seq_len)
