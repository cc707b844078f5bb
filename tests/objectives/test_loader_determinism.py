"""Through the training loader: same samples for any worker count and after a mid-epoch resume."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from streaming import MDSWriter

from llmfoundry_lite.objectives import ObjectiveConfig, build_objective
from llmfoundry_lite.training.config import LoaderConfig

data = pytest.importorskip("llmfoundry_lite.training.data")

L = 64
BATCH = 4
MIX = ObjectiveConfig(weights={"next_token": 0.4, "fim": 0.3, "ul2": 0.3})


@pytest.fixture(scope="module")
def shards(tmp_path_factory, stream) -> Path:
    out = tmp_path_factory.mktemp("objective_shards")
    rows = stream[: (len(stream) // L) * L].reshape(-1, L)[:96]
    with MDSWriter(out=str(out / "train"), columns={"tokens": "ndarray:int32"}, size_limit=1 << 14) as writer:
        for row in rows:
            writer.write({"tokens": row})
    return out


def loader(shards: Path, objective, workers: int):
    lc = LoaderConfig(local=str(shards), shuffle_seed=5, shuffle_algo="py1e", num_workers=workers, drop_last=False)
    return data.build_dataloader(lc, objective, BATCH)


def by_index(batches) -> dict[int, tuple[list[int], list[int]]]:
    out = {}
    for batch in batches:
        for i, ids, labels in zip(batch["sample_index"], batch["input_ids"], batch["labels"], strict=True):
            out[int(i)] = (ids.tolist(), labels.tolist())
    return out


def collect(shards: Path, tokenizer, workers: int) -> dict[int, tuple[list[int], list[int]]]:
    dl = loader(shards, build_objective(MIX, tokenizer, L), workers)
    result = by_index(dl)
    del dl
    gc.collect()  # streaming allows one live dataset per local directory
    return result


def test_worker_count_does_not_change_any_sample(shards, tokenizer):
    single = collect(shards, tokenizer, 0)
    double = collect(shards, tokenizer, 2)
    assert len(single) == 96 and single == double
    transformed = sum(ids != labels for ids, labels in single.values())  # UL2 masks inputs, FIM keeps all
    assert transformed > 10


def test_resume_mid_epoch_reproduces_the_rest(shards, tokenizer):
    full = collect(shards, tokenizer, 0)
    dl = loader(shards, build_objective(MIX, tokenizer, L), 0)
    it = iter(dl)
    first = by_index(next(it) for _ in range(5))
    state = dl.dataset.state_dict(num_samples=5 * BATCH, from_beginning=False)
    del it, dl
    gc.collect()
    resumed = loader(shards, build_objective(MIX, tokenizer, L), 0)
    resumed.dataset.load_state_dict(state)
    rest = by_index(resumed)
    assert len(first) == 5 * BATCH and len(rest) == 96 - 5 * BATCH
    assert {**first, **rest} == full
