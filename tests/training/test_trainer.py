import pytest

from llmfoundry_lite.callbacks.wandb_logger import WandBLogger
from llmfoundry_lite.config import load_config
from llmfoundry_lite.training.config import TrainConfig
from llmfoundry_lite.training.trainer import check_manifests, load_run_tokenizer, resolve_precision
from tests.training.shards import ROOT, tiny_overrides


def test_manifest_mismatch_is_refused_before_training(tiny_shards, tmp_path):
    ok = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", tiny_overrides(tiny_shards, tmp_path))
    check_manifests(ok)
    bad = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", tiny_overrides(tiny_shards, tmp_path) + ["model.max_seq_len=128"])
    with pytest.raises(ValueError, match="max_seq_len: model has 128, shards hold samples of 64 tokens"):
        check_manifests(bad)


def test_tokenizer_larger_than_vocab_is_refused(tiny_shards, tmp_path):
    cfg = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", tiny_overrides(tiny_shards, tmp_path) + ["model.vocab_size=512"])
    with pytest.raises(ValueError, match="has 1024 tokens but model.vocab_size=512; set model.vocab_size=1024"):
        load_run_tokenizer(cfg)


def test_precision_auto_is_fp32_on_cpu_and_mixed_precision_needs_gpu():
    assert resolve_precision("auto") == "fp32"
    with pytest.raises(ValueError, match="precision=amp_bf16 needs a GPU"):
        resolve_precision("amp_bf16")


def test_wandb_never_serves_checkpoints_so_autoresume_stays_offline():
    with pytest.raises(FileNotFoundError, match="W&B does not hold checkpoints"):
        WandBLogger(project="x", init_kwargs={"mode": "offline"}).download_file("latest-rank0.pt", "/tmp/x")


def test_trains_on_an_objective_mixture_with_prefix_lm(tiny_shards, tmp_path):
    from llmfoundry_lite.callbacks.metrics_file import read_metrics
    from llmfoundry_lite.training.trainer import build_trainer

    overrides = tiny_overrides(tiny_shards, tmp_path / "run", max_duration="3ba", eval_interval="3ba",
                               save_interval="3ba", **{"objective.ul2.causal": "false"})
    overrides.append("objective.weights={next_token: 0.4, fim: 0.3, ul2: 0.3}")
    cfg = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", overrides)
    assert cfg.objective.prefix_lm
    trainer = build_trainer(cfg)
    batch = next(iter(trainer.state.train_dataloader))
    assert batch["prefix_len"].shape == (4,)  # UL2 prefix-LM: every sample carries its prefix length
    trainer.fit()
    losses = read_metrics(tmp_path / "run" / "metrics.jsonl", "loss/train/total")
    assert list(losses) == [0, 1, 2] and all(0 < v < 8 for v in losses.values())
    assert read_metrics(tmp_path / "run" / "metrics.jsonl", "metrics/eval/LanguageCrossEntropy")[3] < 7.0
    # The closing line compares the eval loss with the eval split's unigram entropy.
    import numpy as np

    from llmfoundry_lite.training.summary import write_run_summary
    from llmfoundry_lite.training.trainer import final_report
    from tests.training.shards import packed_samples

    val = packed_samples(64)[:16].ravel()
    p = np.bincount(val) / val.size
    entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
    summary = write_run_summary(trainer, tmp_path / "run")
    assert summary["unigram_entropy"] == pytest.approx(entropy)
    assert (summary["positions_processed"], summary["batches"]) == (3 * 4 * 64, 3)
    # Trained tokens are the non-padding ones of the 3 batches (UL2 pads its unused tail).
    from llmfoundry_lite.training.trainer import _loader, load_run_tokenizer

    loader = _loader(cfg, cfg.train_loader, cfg.objective, load_run_tokenizer(cfg), 4)
    next(iter(loader))  # as above: the peek made fit() run in epoch 1, whose draws differ
    batches = iter(loader)
    non_pad = sum(int((next(batches)["segment_ids"] != 0).sum()) for _ in range(3))
    assert summary["tokens_trained"] == non_pad < 3 * 4 * 64
    assert summary["final_train_loss"] == losses[2]
    assert (tmp_path / "run" / "train_summary.json").is_file() and (tmp_path / "run" / "loss_curve.png").is_file()
    assert f"unigram entropy of the eval split {entropy:.4f} nats/token" in final_report(summary)


def test_callbacks_dispatch_follows_the_config():
    from llmfoundry_lite.training.builders import CALLBACKS, build_callbacks

    assert sorted(CALLBACKS) == ["activation_health", "humaneval", "loss_spike", "lr_monitor", "memory_monitor",
                                 "numerical_health", "speed_monitor"]
    cfg = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", ["callbacks.loss_spike=null", "callbacks.speed_monitor.peak_flops=1e11"])
    names = [type(c).__name__ for c in build_callbacks(cfg)]
    assert names == ["SpeedMonitor", "LRMonitor", "NumericalHealthMonitor", "ActivationHealthMonitor"]  # no memory monitor without a GPU
    # With the rollback guard on, the guard records spikes itself: the trainer leaves the recorder out.
    cfg = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", ["callbacks.speed_monitor.peak_flops=1e11"])
    assert "LossSpikeDetector" in [type(c).__name__ for c in build_callbacks(cfg)]
    assert "LossSpikeDetector" not in [type(c).__name__ for c in build_callbacks(cfg, record_spikes=False)]
