"""Training and evaluation data: StreamingDataset over MDS shards, objectives applied per sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from streaming import StreamingDataset
from torch.utils.data import DataLoader

from llmfoundry_lite.objectives import Objective


class ObjectiveDataset(StreamingDataset):
    """A StreamingDataset whose samples pass through a training objective.

    The objective sees the sample's GLOBAL index in the dataset and the epoch, so what a
    sample turns into depends on neither worker count nor resumption point. Each item
    also carries ``sample_index`` so a loss spike can name the exact samples of its batch.
    """

    def __init__(self, *, objective: Objective, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = objective
        self._epoch = 0

    def _resume_incr_epoch(self) -> tuple[int, int]:
        # Called by __iter__ in the process that then reads samples: remember the epoch here.
        epoch, sample_in_epoch = super()._resume_incr_epoch()
        self._epoch = epoch
        return epoch, sample_in_epoch

    def get_item(self, sample_id: int, retry: int = 7) -> dict[str, np.ndarray]:
        # Shards store uint16 when the vocabulary fits; the objectives and the model work in int32.
        tokens = super().get_item(sample_id, retry)["tokens"].astype(np.int32, copy=False)
        out = self.objective(tokens, sample_id, self._epoch)
        out["sample_index"] = np.int64(sample_id)
        return out


def build_dataloader(
    local: str, split: str, objective: Objective, batch_size: int, *, shuffle: bool, shuffle_seed: int,
    shuffle_algo: str, num_canonical_nodes: int, num_workers: int, drop_last: bool,
) -> DataLoader:
    """A DataLoader over ``<local>/<split>``; Composer checkpoints its position through the
    dataset's ``state_dict`` so a resumed run continues mid-epoch with the same order."""
    path = Path(local) / split
    if not (path / "index.json").is_file():
        raise FileNotFoundError(f"no MDS shards at {path} (index.json missing); run the shard-writing step first")
    dataset = ObjectiveDataset(
        objective=objective, local=str(path), shuffle=shuffle, shuffle_seed=shuffle_seed,
        shuffle_algo=shuffle_algo, num_canonical_nodes=num_canonical_nodes, batch_size=batch_size,
    )
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, drop_last=drop_last,
        persistent_workers=num_workers > 0, pin_memory=False,
    )


def unigram_entropy(dataset: StreamingDataset, pad_id: int = 1) -> float:
    """Entropy (nats/token) of the token frequencies of ``dataset``'s raw samples, padding excluded:
    the loss of the best model that ignores context, the bar a trained model must clear."""
    counts = np.zeros(0, dtype=np.int64)
    for i in range(dataset.num_samples):
        tokens = StreamingDataset.get_item(dataset, i)["tokens"]
        tokens = tokens[tokens != pad_id]
        bins = np.bincount(tokens)
        if len(bins) > len(counts):
            counts = np.pad(counts, (0, len(bins) - len(counts)))
        counts[: len(bins)] += bins
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
