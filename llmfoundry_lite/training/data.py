"""Training and evaluation data: StreamingDataset over MDS shards, objectives applied per sample."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from streaming import Stream, StreamingDataset
from torch.utils.data import DataLoader

from llmfoundry_lite.objectives import Objective

if TYPE_CHECKING:
    from llmfoundry_lite.training.config import LoaderConfig


SHM_LOCK = Path(tempfile.gettempdir()) / "llmfoundry_lite-streaming-shm.lock"


@contextlib.contextmanager
def shm_registration_lock() -> Iterator[None]:
    """Held by a job's local leader (local rank 0) while its StreamingDataset registers a shared-memory
    prefix. streaming picks the first free prefix and creates it later, after a barrier, so two jobs
    starting together on one node (a sweep, a reference run beside a resumed one) can pick the same
    prefix and one dies with ``FileExistsError: '/000109_locals'``. The lock makes find-and-create
    one step between jobs; the other ranks of a job wait at streaming's own barriers as before."""
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        yield
        return
    fd = os.open(SHM_LOCK, os.O_RDONLY | os.O_CREAT, 0o666)  # read-only: another user's lock file works too
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class ObjectiveDataset(StreamingDataset):
    """A StreamingDataset whose samples pass through a training objective.

    The objective sees the sample's GLOBAL index in the dataset and the epoch, so what a
    sample turns into depends on neither worker count nor resumption point. Each item
    also carries ``sample_index`` so a loss spike can name the exact samples of its batch.
    """

    def __init__(self, *, objective: Objective, **kwargs: Any) -> None:
        with shm_registration_lock():
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
        shard_id, _ = self.spanner[sample_id]
        out["stream"] = np.int64(self.stream_per_shard[shard_id])
        return out


def _split_dir(local: str, split: str) -> Path:
    path = Path(local) / split
    if not (path / "index.json").is_file():
        raise FileNotFoundError(f"no MDS shards at {path} (index.json missing); run the shard-writing step first")
    return path


def dataset_sources(lc: LoaderConfig, weighted: bool = True) -> dict[str, Any]:
    """``StreamingDataset`` keyword arguments for the loader: one ``local`` or weighted ``streams``.

    ``weighted=False`` keeps the streams but drops their weights: the same global sample ids,
    which is all a replay of named samples needs.
    """
    if not lc.streams:
        return {"local": str(_split_dir(next(iter(lc.stream_dirs().values())), lc.split))}
    streams = []
    for stream in lc.streams.values():
        weights = {"proportion": stream.proportion, "repeat": stream.repeat} if weighted else {}
        streams.append(Stream(local=str(_split_dir(stream.local, lc.split)),
                              **{k: v for k, v in weights.items() if v is not None}))
    return {"streams": streams, "epoch_size": lc.epoch_size if weighted else None}


def build_dataloader(lc: LoaderConfig, objective: Objective, batch_size: int) -> DataLoader:
    """A DataLoader over ``lc``'s shards (``<local>/<split>`` or every stream's); Composer checkpoints
    its position through the dataset's ``state_dict`` so a resumed run continues mid-epoch with the
    same order. With streams, streaming draws each epoch's samples per stream from the weights
    (seeded by ``shuffle_seed``), so the mixture is as deterministic as the order."""
    dataset = ObjectiveDataset(
        objective=objective, shuffle=lc.shuffle, shuffle_seed=lc.shuffle_seed, shuffle_algo=lc.shuffle_algorithm(),
        num_canonical_nodes=lc.num_canonical_nodes, batch_size=batch_size, **dataset_sources(lc),
    )
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=lc.num_workers, drop_last=lc.drop_last,
        persistent_workers=lc.num_workers > 0, pin_memory=False,
    )


def describe_mixture(dataset: StreamingDataset, names: list[str]) -> str:
    """One line per stream: samples drawn per epoch, its share and repeat (what the weights resolved to)."""
    lines = [f"train_loader: {len(names)} streams, {dataset.epoch_size:,} samples per epoch"]
    for name, stream, size in zip(names, dataset.streams, dataset.samples_per_stream, strict=True):
        lines.append(f"  {name}: {int(stream.choose):,} of {int(size):,} samples per epoch "
                     f"({stream.proportion:.1%} of the epoch, repeat {stream.repeat:.2f})")
    return "\n".join(lines)


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
