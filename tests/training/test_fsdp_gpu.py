"""FSDP + bf16 on a GPU (Composer's FSDP does not run on CPU/gloo, so this is GPU-only)."""

import pytest
import torch

from llmfoundry_lite.callbacks.metrics_file import read_metrics
from llmfoundry_lite.config import load_config
from llmfoundry_lite.training.config import TrainConfig
from tests.training.shards import ROOT, tiny_overrides


@pytest.mark.gpu
def test_fsdp_full_shard_bf16_trains_and_checkpoints(tiny_shards, tmp_path):
    from llmfoundry_lite.training.trainer import build_trainer

    assert torch.cuda.is_available()
    overrides = tiny_overrides(tiny_shards, tmp_path / "run", max_duration="2ba", save_interval="2ba",
                               eval_interval="2ba", precision="amp_bf16", device_train_microbatch_size="2")
    overrides += ["fsdp_config.sharding_strategy=FULL_SHARD", "fsdp_config.activation_checkpointing=true"]
    cfg = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", overrides)
    trainer = build_trainer(cfg)
    assert trainer.state.fsdp_enabled
    trainer.fit()
    losses = read_metrics(tmp_path / "run" / "metrics.jsonl", "loss/train/total")
    assert list(losses) == [0, 1] and all(0 < v < 8 for v in losses.values())
    assert (tmp_path / "run" / "ep0-ba2-rank0.pt").is_file()
