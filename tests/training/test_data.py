import shutil

import numpy as np
import pytest
import torch

from llmfoundry_lite.objectives import ObjectiveConfig, build_objective
from llmfoundry_lite.tokenizer.io import load_tokenizer
from llmfoundry_lite.training.config import LoaderConfig
from llmfoundry_lite.training.data import build_dataloader
from tests.training.shards import TOKENIZER_DIR, packed_samples


def batches(local, num_workers: int, shuffle: bool = True, n: int = 4) -> list[dict[str, torch.Tensor]]:
    objective = build_objective(ObjectiveConfig(), load_tokenizer(TOKENIZER_DIR), 64)
    lc = LoaderConfig(local=str(local), shuffle=shuffle, shuffle_seed=5, num_workers=num_workers)
    dl = build_dataloader(lc, objective, 4)
    out = []
    for i, batch in enumerate(dl):
        if i == n:
            break
        out.append(batch)
    return out


def test_items_carry_global_sample_index_and_objective_output(tiny_shards):
    rows = packed_samples(64)[16:]  # the train split (val holds the first 16 rows)
    for batch in batches(tiny_shards, 0):
        assert batch["input_ids"].dtype == torch.int64 and batch["input_ids"].shape == (4, 64)
        for ids, labels, idx in zip(batch["input_ids"], batch["labels"], batch["sample_index"], strict=True):
            assert np.array_equal(ids.numpy(), rows[int(idx)])  # index = row in the MDS split
            assert torch.equal(labels, ids)  # next-token, nothing padded here


def test_shuffle_is_seeded_and_independent_of_worker_count(tiny_shards, tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(tiny_shards, other)
    order0 = [b["sample_index"].tolist() for b in batches(tiny_shards, 0)]
    order2 = [b["sample_index"].tolist() for b in batches(other, 2)]
    plain = [b["sample_index"].tolist() for b in batches(tiny_shards, 0, shuffle=False)]
    assert order0 == order2
    assert plain[0] == [0, 1, 2, 3] and order0 != plain


def test_missing_shards_name_the_directory(tmp_path):
    objective = build_objective(ObjectiveConfig(), load_tokenizer(TOKENIZER_DIR), 64)
    with pytest.raises(FileNotFoundError, match=f"no MDS shards at {tmp_path}/train"):
        build_dataloader(LoaderConfig(local=str(tmp_path)), objective, 4)
