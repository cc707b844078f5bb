"""Every collective the package issues takes tensors on the trainer's device (NCCL's rule), checked on CPU.

``tests/training/strict_device.py`` makes a collective on a host tensor fail here as it does under
NCCL on a GPU. A real Composer run with every shipped callback on (FSDP2, so the sharded reductions
run too) and the fine-tuning evaluation path then run under it, and each audited collective must
have been issued: a run that merely skipped them would prove nothing.
"""

import json
from collections import Counter

import pytest
import torch

from llmfoundry_lite.config import load_config
from llmfoundry_lite.training.config import TrainConfig
from tests.training.shards import ROOT, launch_ranks, tiny_overrides
from tests.training.strict_device import NCCL_ERROR, Placement, StrictDevice, strict_collectives


@pytest.fixture
def strict(monkeypatch) -> Placement:
    """A Placement whose StrictDevice every Trainer built in the test uses."""
    import composer.trainer.trainer as composer_trainer

    placement = Placement()
    device = StrictDevice(placement)
    monkeypatch.setattr(composer_trainer, "get_device", lambda _requested: device)
    return placement


def test_the_harness_rejects_a_host_tensor_and_accepts_a_placed_one(strict):
    from composer.utils import dist

    from llmfoundry_lite.training.parallel import init_process_group

    init_process_group(60.0)
    device = StrictDevice(strict)
    with strict_collectives(strict):
        host = torch.tensor([1.0, 2.0])
        with pytest.raises(RuntimeError, match=NCCL_ERROR):
            dist.all_reduce(host)
        with pytest.raises(RuntimeError, match=NCCL_ERROR):
            dist.all_reduce(host.reshape(2, 1).sum(0))  # computed from host tensors alone: still host
        placed = device.tensor_to_device(host)
        with pytest.raises(RuntimeError, match=NCCL_ERROR):
            dist.all_reduce(device.tensor_to_device(host).cpu())  # brought back to the host
        dist.all_reduce(placed * 2)  # computed from a device tensor: on the device
        dist.all_reduce(torch.zeros(2, device=placed.device))  # names the device
        assert placed.tolist() == [1.0, 2.0]
    assert [name for name, _ in strict.calls] == ["all_reduce"] * 5


def test_every_callback_of_a_pretraining_run_reduces_device_tensors(strict, tiny_shards, tmp_path):
    from composer.callbacks import LRMonitor, SpeedMonitor

    from llmfoundry_lite.callbacks.activation_health import ActivationHealthMonitor
    from llmfoundry_lite.callbacks.console import CompactConsoleLogger
    from llmfoundry_lite.callbacks.grad_clip import GlobalGradClip
    from llmfoundry_lite.callbacks.loss_spike import LossSpikeDetector
    from llmfoundry_lite.callbacks.metrics_file import JSONLinesLogger
    from llmfoundry_lite.callbacks.numerical_health import NumericalHealthMonitor
    from llmfoundry_lite.callbacks.run_info import RunInfo
    from llmfoundry_lite.callbacks.streams import StreamCounter
    from llmfoundry_lite.eval.callback import HumanEvalCallback
    from llmfoundry_lite.training.parallel import ShardingReport
    from llmfoundry_lite.training.trainer import build_trainer

    shipped = {CompactConsoleLogger, JSONLinesLogger, RunInfo, ShardingReport, StreamCounter, SpeedMonitor, LRMonitor,
               LossSpikeDetector, NumericalHealthMonitor, ActivationHealthMonitor, HumanEvalCallback, GlobalGradClip}

    humaneval = "{every_n_batches: 3, n_problems: 1, max_new_tokens: 4, workers: 1}"
    cfg = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", [
        *tiny_overrides(tiny_shards, tmp_path / "run", max_duration="3ba", eval_interval="3ba", save_interval="3ba"),
        "fsdp_config={}", "callbacks.numerical_health.interval=1", "callbacks.activation_health.interval=1",
        f"callbacks.humaneval={humaneval}",
        "callbacks.loss_spike.min_history=1", "callbacks.loss_spike.z_threshold=-1e9",
        "callbacks.loss_spike.ratio_threshold=0", "grad_clip_norm=1.0"])
    trainer = build_trainer(cfg)
    attached = {type(c) for c in [*trainer.state.callbacks, *trainer.logger.destinations]}
    assert shipped <= attached, f"not attached: {shipped - attached}"
    with strict_collectives(strict):
        trainer.fit()
    spikes = next(c for c in trainer.state.callbacks if isinstance(c, LossSpikeDetector)).num_spikes
    calls = Counter(strict.calls)
    trainer.close()
    assert spikes == 2  # batch 0 is the history, 1 and 2 "spike"
    assert calls[("all_reduce", "llmfoundry_lite.callbacks.streams")] == 3  # one per batch
    assert calls[("all_reduce", "llmfoundry_lite.callbacks.numerical_health")] == 3 * 3  # sum, min, max per step
    assert calls[("all_reduce", "llmfoundry_lite.callbacks.activation_health")] == 3 * 2  # max, sum per step
    assert calls[("all_gather_object", "llmfoundry_lite.callbacks.loss_spike")] == spikes
    assert calls[("all_gather_object", "llmfoundry_lite.eval.callback")] == 1
    assert calls[("all_reduce", "llmfoundry_lite.eval.callback")] == 1  # the start-up reference run, at Event.FIT_START


def _instruction_rows(path, n: int) -> None:
    """``n`` prompt/response rows: tiny functions that return a number."""
    rows = [{"prompt": f"Write a function that returns {i}.", "response": f"def f():\n    return {i}\n"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.slow
def test_finetuning_on_two_ranks_reduces_the_heldout_loss_on_the_device(tiny_shards, tmp_path):
    from llmfoundry_lite.finetune.config import FinetuneConfig
    from llmfoundry_lite.finetune.trainer import build_finetune_trainer, response_loss
    from llmfoundry_lite.training.trainer import build_trainer

    base = tmp_path / "base"
    pretrain = build_trainer(load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", tiny_overrides(
        tiny_shards, base, max_duration="1ba", eval_interval="1ba", save_interval="1ba")))
    pretrain.fit()
    pretrain.close()
    data = tmp_path / "sft.jsonl"
    _instruction_rows(data, 16)
    overrides = [f"base={base}", f"train_loader.data={data}", "train_loader.max_seq_len=64",
                 f"eval_loader={{data: {data}, max_seq_len: 64}}", "global_train_batch_size=4",
                 "device_eval_batch_size=2", "max_duration=2ba", "eval_interval=2ba", "save_interval=2ba",
                 "scheduler.t_warmup=1ba", "loggers.wandb=null", "callbacks.speed_monitor.peak_flops=1e11"]
    out = tmp_path / "ranks"
    out.mkdir()
    launch_ranks(2, ["-m", "tests.training.strict_finetune_rank", str(out), f"save_folder={tmp_path / 'ft'}", *overrides])
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        calls = Counter(tuple(c) for c in rank["calls"])
        assert calls[("all_reduce", "llmfoundry_lite.finetune.trainer")] == 2  # before and after training
        assert calls[("all_reduce", "llmfoundry_lite.callbacks.streams")] == 2  # one per batch
    before = [rank["summary"]["heldout_response_loss_before"] for rank in ranks]
    assert before[0] == before[1]  # the reduced value, the same on both ranks
    # ... and the mean over the whole held-out split, as one process computes it.
    single = build_finetune_trainer(load_config(FinetuneConfig, None, [f"save_folder={tmp_path / 'one'}", *overrides]))
    assert before[0] == pytest.approx(response_loss(single), rel=1e-6)
    single.close()
