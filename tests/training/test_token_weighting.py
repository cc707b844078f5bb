"""The loss is the token mean over the global batch, however it is cut into microbatches and ranks.

A UL2-heavy mixture makes samples carry very different numbers of loss tokens, so sample-weighted
averaging (Composer's default) would give a clearly different number; the test checks that gap too.
"""

import shutil
from pathlib import Path

import pytest
import torch

from llmfoundry_lite.callbacks.metrics_file import read_metrics
from llmfoundry_lite.config import load_config
from llmfoundry_lite.models.loss import token_sum_loss
from llmfoundry_lite.training.config import TrainConfig
from tests.training.shards import ROOT, first_global_batch, launch_ranks, tiny_overrides

LOSS = "loss/train/total"
UL2_HEAVY = "objective.weights={next_token: 0.2, fim: 0.2, ul2: 0.6}"


def overrides(shards: Path, save: Path, **extra: str) -> list[str]:
    return tiny_overrides(shards, save, global_train_batch_size="8", max_duration="3ba", save_interval="3ba",
                          eval_interval="3ba", **extra) + [UL2_HEAVY]


def first_batch_losses(cfg: TrainConfig) -> tuple[float, float]:
    """(token mean, sample mean) of the fresh model's loss on the first global batch, by hand."""
    model, batch = first_global_batch(cfg)
    with torch.no_grad():
        logits = model(batch)
        sums, counts = zip(*(token_sum_loss(logits[i:i + 1], batch["labels"][i:i + 1]) for i in range(len(logits))),
                           strict=True)
    sums_t, counts_t = torch.stack(sums), torch.stack(counts).double()
    assert counts_t.min() < 0.5 * counts_t.max(), "the mixture should give samples very different token counts"
    return float(sums_t.sum() / counts_t.sum()), float((sums_t / counts_t).mean())


def final_weights(save: Path) -> dict[str, torch.Tensor]:
    return torch.load(save / "ep0-ba3-rank0.pt", map_location="cpu", weights_only=False)["state"]["model"]


def run_in_process(shards: Path, save: Path, microbatch: str) -> None:
    from llmfoundry_lite.training.trainer import build_trainer

    cfg = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml",
                      overrides(shards, save, device_train_microbatch_size=microbatch))
    build_trainer(cfg).fit()


@pytest.mark.slow
def test_step0_loss_and_weights_equal_for_1x8_8x1_and_2_ranks_x4(tiny_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    runs = {"1x8": tmp_path / "1x8", "8x1": tmp_path / "8x1", "2 ranks x4": tmp_path / "2x4"}
    run_in_process(shards, runs["1x8"], "8")
    run_in_process(shards, runs["8x1"], "1")
    launch_ranks(2, ["train.py", "yamls/code-tiny.yaml",
                     *overrides(shards, runs["2 ranks x4"], device_train_microbatch_size="4")])

    token_mean, sample_mean = first_batch_losses(load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml",
                                                             overrides(shards, tmp_path / "ref")))
    assert abs(token_mean - sample_mean) > 1e-3  # the two weightings really differ on this batch
    step0 = {name: read_metrics(save / "metrics.jsonl", LOSS)[0] for name, save in runs.items()}
    print(f"step-0 loss {step0}; token mean by hand {token_mean:.7f}; sample mean {sample_mean:.7f}")
    for name, loss in step0.items():
        assert loss == pytest.approx(step0["1x8"], abs=1e-6), (name, step0)
        # float32 sums in a different order than the by-hand reference: equal to ~1e-7 relative
        assert loss == pytest.approx(token_mean, rel=1e-6), (name, step0, token_mean)

    reference = final_weights(runs["1x8"])
    for name in ("8x1", "2 ranks x4"):
        weights = final_weights(runs[name])
        for key, value in reference.items():
            torch.testing.assert_close(weights[key], value, atol=2e-5, rtol=1e-4, msg=f"{name}: {key}")
