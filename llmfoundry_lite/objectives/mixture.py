"""Per-sample mixture of objectives with draws keyed on (seed, sample index, epoch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from llmfoundry_lite.objectives.config import ObjectiveConfig
from llmfoundry_lite.tokenizer.special import PAD

if TYPE_CHECKING:
    from tokenizers import Tokenizer

IGNORE_INDEX = -100
Transform = Callable[[np.ndarray, np.random.Generator], dict[str, np.ndarray]]


def sample_rng(seed: int, sample_index: int, epoch: int, salt: int = 0) -> np.random.Generator:
    """A generator that depends only on its arguments, never on call order or worker."""
    return np.random.default_rng([seed, epoch, sample_index, salt])


def next_token(tokens: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
    """Plain causal LM: labels are the inputs (the model shifts), padding masked out."""
    input_ids = tokens.astype(np.int64)
    labels = input_ids.copy()
    labels[input_ids == pad_id] = IGNORE_INDEX
    return {"input_ids": input_ids, "labels": labels}


class Objective:
    """Applies the configured mixture to packed samples."""

    def __init__(self, cfg: ObjectiveConfig, pad_id: int, max_seq_len: int) -> None:
        names = sorted(n for n, w in cfg.weights.items() if w > 0)
        total = sum(cfg.weights[n] for n in names)
        self.names = names
        self.probs = np.array([cfg.weights[n] / total for n in names])
        self.seed = cfg.seed
        self.pad_id = pad_id
        self.max_seq_len = max_seq_len

    def choose(self, sample_index: int, epoch: int) -> str:
        rng = sample_rng(self.seed, sample_index, epoch, salt=0)
        return self.names[int(rng.choice(len(self.names), p=self.probs))]

    def __call__(self, tokens: np.ndarray, sample_index: int, epoch: int) -> dict[str, np.ndarray]:
        if len(tokens) != self.max_seq_len:
            raise ValueError(f"sample {sample_index} has {len(tokens)} tokens, expected max_seq_len={self.max_seq_len}")
        name = self.choose(sample_index, epoch)
        if name == "next_token":
            return next_token(tokens, self.pad_id)
        raise ValueError(f"objective {name!r} is not implemented")


def build_objective(cfg: ObjectiveConfig, tokenizer: Tokenizer, max_seq_len: int) -> Objective:
    """The loader-side objective for a training run (``tokenizer``: a ``tokenizers.Tokenizer``)."""
    pad_id = tokenizer.token_to_id(PAD)
    if pad_id is None:
        raise ValueError(f"tokenizer has no {PAD!r} token; train it with data_prep/train_tokenizer.py")
    return Objective(cfg, pad_id=pad_id, max_seq_len=max_seq_len)
