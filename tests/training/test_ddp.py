"""`composer -n 2 train.py` on CPU (gloo DDP): two processes split each global batch of the code-tiny
objective mixture, and the logged loss is the token mean of the whole batch."""

import shutil

import pytest
import torch

from llmfoundry_lite.callbacks.metrics_file import read_metrics
from llmfoundry_lite.config import load_config
from llmfoundry_lite.training.config import TrainConfig
from tests.training.shards import ROOT, first_global_batch, launch_ranks, tiny_overrides


@pytest.mark.slow
def test_composer_launcher_two_cpu_processes(tiny_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    save = tmp_path / "run"
    # code-tiny's own next-token + FIM + UL2 mixture: ranks hold different numbers of loss tokens,
    # and the loss is still the token mean of the global batch (Composer's token accumulation).
    overrides = tiny_overrides(shards, save, max_duration="2ba", eval_interval="2ba", save_interval="2ba")
    launch_ranks(2, ["train.py", "yamls/code-tiny.yaml", *overrides])
    losses = read_metrics(save / "metrics.jsonl", "loss/train/total")
    assert list(losses) == [0, 1]
    model, batch = first_global_batch(load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", overrides))
    with torch.no_grad():
        reference = model.loss(model(batch), batch).item()  # one process, the whole global batch
    assert losses[0] == pytest.approx(reference, rel=1e-5)
    assert (save / "ep0-ba2-rank0.pt").is_file()
