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
from composer.utils import dist
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
    (seeded by ``shuffle_seed``), so the mixture is as deterministic as the order.

    The order does not depend on the world size either (elastic determinism, streaming 0.13): the
    shuffle is a function of ``num_canonical_nodes`` (fixed by config, never derived from the nodes
    present) and the seed, and streaming deals that one global order out rank by rank in
    ``batch_size`` (per-device) rows, so global batch k holds the same samples on 1, 2 or 4 ranks
    as long as the global batch is fixed (``global_train_batch_size``). A run resumed on another
    world size continues at the saved global sample (``tests/training/test_meshes.py``)."""
    dataset = ObjectiveDataset(
        objective=objective, shuffle=lc.shuffle, shuffle_seed=lc.shuffle_seed, shuffle_algo=lc.shuffle_algorithm(),
        num_canonical_nodes=lc.num_canonical_nodes, batch_size=batch_size, **dataset_sources(lc),
    )
    if lc.drop_last:
        require_full_batch(len(dataset), batch_size, dist.get_world_size(),
                           f"{lc.split} split: {dataset.epoch_size:,} samples per epoch",
                           "add samples, lower the batch size (global_train_batch_size / device_eval_batch_size) or "
                           "set drop_last: false to train the partial batch")
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=lc.num_workers, drop_last=lc.drop_last,
        persistent_workers=lc.num_workers > 0, pin_memory=False,
    )


def require_full_batch(rows_per_rank: int, batch_size: int, world_size: int, what: str, fix: str) -> None:
    """Refuse, at start, a loader whose epoch holds no full batch on a rank.

    The loader drops the partial batch (``drop_last``), so such an epoch is empty, and Composer
    then loops over empty epochs at step 0 forever without a message (one LoRA run on 32 short
    rows went through 550,000 of them in 6 minutes). ``what`` names the data and its size, ``fix``
    the way out; both land in the error with the rows per rank and the batch size.
    """
    if rows_per_rank < batch_size:
        raise ValueError(f"{what}, i.e. {rows_per_rank:,} per rank over {world_size} rank(s): fewer than one batch "
                         f"of {batch_size} per rank ({batch_size * world_size} in all). The partial batch is "
                         f"dropped, so every epoch would be empty and training would never advance; {fix}")


def describe_mixture(dataset: StreamingDataset, names: list[str]) -> str:
    """One line per stream: samples drawn per epoch, its share and repeat (what the weights resolved to)."""
    lines = [f"train_loader: {len(names)} streams, {dataset.epoch_size:,} samples per epoch"]
    for name, stream, size in zip(names, dataset.streams, dataset.samples_per_stream, strict=True):
        lines.append(f"  {name}: {int(stream.choose):,} of {int(size):,} samples per epoch "
                     f"({stream.proportion:.1%} of the epoch, repeat {stream.repeat:.2f})")
    return "\n".join(lines)


def unigram_entropy(dataset: StreamingDataset, pad_id: int) -> float:
    """Entropy (nats/token) of the token frequencies of ``dataset``'s raw samples, padding excluded:
    the loss of the best model that ignores context, the bar a trained model must clear.
    ``pad_id`` is the tokenizer's (``objective.special.pad``): no id is assumed."""
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
