"""``load_path`` starts a new run from a checkpoint's weights: fresh optimizer, schedule and data
position, so ``max_duration`` counts new batches; ``load_training_state=true`` continues the saved run
instead. Both checkpoint formats: a full ``.pt`` file and a sharded (distributed-checkpoint) directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmfoundry_lite.callbacks.metrics_file import read_metrics
from llmfoundry_lite.config import load_config
from llmfoundry_lite.models.checkpoint_io import iter_model_state, locate_checkpoint
from llmfoundry_lite.training.config import TrainConfig
from tests.training.shards import ROOT, first_global_batch, tiny_overrides

LOSS = "loss/train/total"
LR = "lr-FusedDecoupledAdamW/group0"
FORMATS = {  # name → (overrides, checkpoint the 4-batch source run writes)
    "full": ([], "ep0-ba4-rank0.pt"),
    # One process with FSDP2 writes the sharded layout (a directory of .distcp files) and loads it back.
    "sharded": (["fsdp_config.sharding_strategy=FULL_SHARD", "fsdp_config.state_dict_type=sharded"], "ep0-ba4"),
}


def overrides(shards: Path, save: Path, fmt: str, **extra: str) -> list[str]:
    return [*tiny_overrides(shards, save, eval_interval="4ba", save_interval="2ba", **extra), *FORMATS[fmt][0]]


def train(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "train.py", "yamls/code-tiny.yaml", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module", params=list(FORMATS))
def source(request, tiny_shards, tmp_path_factory) -> tuple[str, Path]:
    """A 4-batch run of the format: (format, its save folder)."""
    save = tmp_path_factory.mktemp(f"source-{request.param}") / "run"
    train(overrides(tiny_shards, save, request.param, max_duration="4ba"))
    assert (save / FORMATS[request.param][1]).exists()
    return request.param, save


@pytest.mark.slow
def test_load_path_starts_from_the_weights_with_a_fresh_run(source, tiny_shards, tmp_path):
    fmt, src = source
    save = tmp_path / "run"
    args = overrides(tiny_shards, save, fmt, max_duration="2ba", load_path=str(src / FORMATS[fmt][1]))
    train(args)
    metrics = save / "metrics.jsonl"
    losses = read_metrics(metrics, LOSS)
    assert list(losses) == [0, 1]  # two new batches, not "already at batch 4, nothing to do"
    # A fresh schedule: the source run's warmup again, not its LR after batch 4.
    src_lr, new_lr = list(read_metrics(src / "metrics.jsonl", LR).values()), list(read_metrics(metrics, LR).values())
    assert new_lr == src_lr[:2] and src_lr[0] != src_lr[-1]
    # The weights at the start are the checkpoint's, and the data starts over: the first loss is
    # the checkpoint's loss on the run's first batch.
    model, batch = first_global_batch(load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", args))
    with torch.no_grad():
        fresh_loss = model.loss(model(batch), batch).item()
        model.load_state_dict(dict(iter_model_state(locate_checkpoint(src / FORMATS[fmt][1]))))
        loaded_loss = model.loss(model(batch), batch).item()
    assert losses[0] == pytest.approx(loaded_loss, rel=1e-5)
    assert abs(loaded_loss - fresh_loss) > 1e-3  # the check could tell the two apart
    assert locate_checkpoint(save).path.name == FORMATS[fmt][1].replace("ba4", "ba2")


@pytest.mark.slow
def test_load_training_state_continues_the_saved_run(source, tiny_shards, tmp_path):
    fmt, src = source
    save = tmp_path / "run"
    train(overrides(tiny_shards, save, fmt, max_duration="6ba", load_path=str(src / FORMATS[fmt][1]),
                    load_training_state="true"))
    assert list(read_metrics(save / "metrics.jsonl", LOSS)) == [4, 5]  # the timestamp came with it
    assert locate_checkpoint(save).path.name == FORMATS[fmt][1].replace("ba4", "ba6")


def test_load_training_state_needs_load_path():
    with pytest.raises(ValueError, match="load_training_state=true .* give load_path"):
        TrainConfig(load_training_state=True)
