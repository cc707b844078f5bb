from types import SimpleNamespace

import pytest
import torch
from composer.core import Precision, State
from composer.loggers import Logger as ComposerLogger
from composer.loggers import LoggerDestination
from composer.models import ComposerModel
from torch.utils.data import DataLoader, TensorDataset

from llmfoundry_lite.callbacks.numerical_health import (
    NumericalHealthMonitor,
    fp16_underflow_fraction,
    grad_stats,
    layer_of,
    underflow_fraction,
)


def test_layer_of_strips_wrappers():
    assert layer_of("module.model.blocks.3.attn.qkv_proj.weight") == "block3"
    assert layer_of("model._fsdp_wrapped_module.embed.weight") == "embed"
    assert layer_of("lm_head.weight") == "lm_head"


def named_grads(grads: dict[str, list[float]]) -> list[tuple[str, torch.nn.Parameter]]:
    out = []
    for name, values in grads.items():
        p = torch.nn.Parameter(torch.zeros(len(values)))
        p.grad = torch.tensor(values)
        out.append((name, p))
    return out


def test_grad_stats_per_layer_values():
    params = named_grads({
        "blocks.0.attn.qkv_proj.weight": [3.0, 0.0, -4.0, 0.0],
        "blocks.0.mlp.up_proj.weight": [float("nan"), float("inf"), 1.0, 0.0],
        "embed.weight": [0.0, 0.0, 0.0, 2.0],
    })
    stats = grad_stats(params)
    b0 = stats["block0"]
    assert b0["norm"] == pytest.approx(26**0.5)  # sqrt(9 + 16 + 1), non-finite excluded
    assert (b0["min"], b0["max"], b0["absmax"]) == (-4.0, 3.0, 4.0)
    assert b0["zero_frac"] == 3 / 8 and b0["nan"] == 1 and b0["inf"] == 1
    assert stats["embed"]["zero_frac"] == 0.75
    assert underflow_fraction(stats) == 3 / 8  # the embedding is left out


class Logger:
    def __init__(self):
        self.metrics = {}

    def log_metrics(self, metrics, step=None):
        self.metrics.update(metrics)


def fp16_state(init_scale: float = 1024.0, precision: Precision = Precision.AMP_FP16) -> SimpleNamespace:
    """What the monitor reads from Composer's State: a tiny model, its optimizer and a real GradScaler."""
    model = torch.nn.Linear(4, 1, bias=False)
    return SimpleNamespace(model=model, optimizers=[torch.optim.SGD(model.parameters(), lr=0.1)],
                           scaler=torch.amp.GradScaler("cpu", init_scale=init_scale), precision=precision,
                           timestamp=SimpleNamespace(batch=0))


X = torch.tensor([[1.0, 2.0, 3.0, 4.0]])


def train_step(mon: NumericalHealthMonitor, state: SimpleNamespace, logger: "Logger", overflow: bool = False) -> None:
    """Composer 0.32.1's order: scaled backward, unscale_, AFTER_TRAIN_BATCH, step, update, BATCH_END."""
    opt, scaler = state.optimizers[0], state.scaler
    opt.zero_grad()
    scaler.scale(state.model(X).sum()).backward()
    if overflow:
        state.model.weight.grad[0, 1] = float("inf")
    scaler.unscale_(opt)
    mon.after_train_batch(state, logger)
    scaler.step(opt)
    scaler.update()
    state.timestamp.batch += 1  # Composer advances the timestamp before BATCH_END
    mon.batch_end(state, logger)


def test_fp16_loss_scale_and_skipped_steps_with_a_real_grad_scaler():
    state, logger = fp16_state(), Logger()
    mon = NumericalHealthMonitor(interval=1)
    train_step(mon, state, logger)
    # The statistics see unscaled gradients: d(sum(w·x))/dw = x, not 1024·x.
    assert logger.metrics["grad_health/global_norm"] == pytest.approx(float(X.norm()))
    assert (logger.metrics["fp16/loss_scale"], logger.metrics["fp16/skipped_steps"]) == (1024.0, 0)
    weight = state.model.weight.detach().clone()
    train_step(mon, state, logger, overflow=True)
    assert logger.metrics["grad_health/nonfinite"] == 1  # logged on the sampled step
    assert torch.equal(state.model.weight, weight)  # the scaler skipped the optimizer step ...
    assert (logger.metrics["fp16/loss_scale"], logger.metrics["fp16/skipped_steps"]) == (512.0, 1)  # ... and halved
    train_step(mon, state, logger)
    assert (logger.metrics["fp16/loss_scale"], logger.metrics["fp16/skipped_steps"]) == (512.0, 1)
    assert list(mon.recent_skips) == [False, True, False]
    assert logger.metrics["grad_health/nonfinite"] == 0
    # 1 of 3 steps: under 5% of the 100-step window; the inf itself is the scaler's business, no warning
    assert mon.warnings == []


def test_skip_count_survives_a_checkpoint_round_trip():
    state, logger = fp16_state(), Logger()
    mon = NumericalHealthMonitor(interval=1)
    for overflow in (False, True, True):
        train_step(mon, state, logger, overflow)
    saved = mon.state_dict()
    assert saved == {"skipped_steps": 2, "recent_skips": [False, True, True]}
    resumed = NumericalHealthMonitor(interval=1)
    resumed.load_state_dict(saved)
    train_step(resumed, state, logger, overflow=True)
    assert logger.metrics["fp16/skipped_steps"] == 3 and logger.metrics["fp16/loss_scale"] == 128.0
    assert list(resumed.recent_skips) == [False, True, True, True]
    old = NumericalHealthMonitor()
    old.load_state_dict({})  # a checkpoint from before the monitor kept state
    assert old.skipped_steps == 0


def test_warns_on_frequent_skips_but_not_on_the_start_calibration():
    state, logger = fp16_state(), Logger()
    mon = NumericalHealthMonitor(interval=1000, skip_warn=0.05, skip_window=20)
    for _ in range(3):  # the scale comes down from its initial value: counted, not judged
        train_step(mon, state, logger, overflow=True)
    train_step(mon, state, logger)
    assert logger.metrics["fp16/skipped_steps"] == 3 and list(mon.recent_skips) == [False] and mon.warnings == []
    train_step(mon, state, logger, overflow=True)  # 1 of 20 = 5%: not over
    assert mon.warnings == []
    train_step(mon, state, logger, overflow=True)  # 2 > 0.05 · 20
    assert len(mon.warnings) == 1
    assert "2 of the last 3 steps were skipped" in mon.warnings[0] and "5 in all" in mon.warnings[0]
    assert "amp_bf16" in mon.warnings[0]
    train_step(mon, state, logger, overflow=True)  # same episode: no second warning
    assert len(mon.warnings) == 1


def test_warns_when_the_loss_scale_falls_below_one():
    state, logger = fp16_state(init_scale=2.0), Logger()
    mon = NumericalHealthMonitor(interval=1000)
    train_step(mon, state, logger, overflow=True)
    assert logger.metrics["fp16/loss_scale"] == 1.0 and mon.warnings == []
    train_step(mon, state, logger, overflow=True)
    assert logger.metrics["fp16/loss_scale"] == 0.5
    assert len(mon.warnings) == 1 and "loss scale fell to 0.5" in mon.warnings[0] and "amp_bf16" in mon.warnings[0]


def test_no_fp16_metrics_when_the_scaler_is_not_used():
    """Composer builds an enabled GradScaler for amp_bf16 on GPU too; it never scales, so nothing is logged."""
    state, logger = fp16_state(precision=Precision.AMP_BF16), Logger()
    mon = NumericalHealthMonitor(interval=1)
    state.model(X).sum().backward()
    mon.after_train_batch(state, logger)
    mon.batch_end(state, logger)
    assert not any(k.startswith("fp16/") for k in logger.metrics) and "grad_health/global_norm" in logger.metrics


def test_statistics_refuse_scaled_gradients():
    state, logger = fp16_state(), Logger()
    state.scaler.scale(state.model(X).sum()).backward()  # no unscale_
    with pytest.raises(RuntimeError, match="still multiplied by the loss scale"):
        NumericalHealthMonitor().after_train_batch(state, logger)


def test_fp16_underflow_fraction_matches_an_fp16_cast():
    tiny = [2.0**-26, 2.0**-25, 1.5 * 2.0**-25, 2.0**-24, 1.0]  # the first two flush to 0, the rest survive
    params = named_grads({
        "blocks.0.mlp.up_proj.weight": [*tiny, 0.0, float("nan"), float("inf")],
        "lm_head.weight": [1e-9, 1e-3, 1e-3],
        "embed.weight": [1e-9],  # left out of the total, like underflow_fraction
    })
    stats = grad_stats(params)
    values = torch.tensor(tiny)
    assert int((values.half() == 0).sum()) == 2
    assert stats["block0"]["fp16_underflow_frac"] == 2 / 5  # of the nonzero finite elements
    assert stats["lm_head"]["fp16_underflow_frac"] == 1 / 3 and stats["embed"]["fp16_underflow_frac"] == 1.0
    assert fp16_underflow_fraction(stats) == 3 / 8


def test_monitor_logs_the_fp16_underflow_share_and_warns_on_zeros():
    model = torch.nn.Linear(10, 1, bias=False)
    model.weight.grad = torch.tensor([[0.0] * 8 + [1e-9, 1e-3]])
    state = SimpleNamespace(model=model, timestamp=SimpleNamespace(batch=0), precision=Precision.FP32, scaler=None)
    mon, logger = NumericalHealthMonitor(interval=10, underflow_warn=0.05), Logger()
    mon.after_train_batch(state, logger)
    assert logger.metrics["grad_health/underflow_frac"] == pytest.approx(0.8)
    assert logger.metrics["grad_health/fp16_underflow_frac"] == 0.5
    assert logger.metrics["grad_health/weight/fp16_underflow_frac"] == 0.5
    assert "grad_health/weight/fp16_flush" not in logger.metrics
    assert len(mon.warnings) == 1 and "80.0%" in mon.warnings[0] and "amp_bf16" not in mon.warnings[0]
    state.timestamp.batch = 4  # step 5: not a collection step (interval 10)
    mon.after_train_batch(state, logger)
    assert len(mon.warnings) == 1


def test_monitor_warns_when_underflow_keeps_rising():
    mon = NumericalHealthMonitor(interval=1, underflow_warn=0.5, trend_window=3)
    for i, frac in enumerate([0.01, 0.02, 0.03]):
        mon.recent.append(frac)
        mon._warn(i, frac, 0, "amp_fp16")
    assert len(mon.warnings) == 1 and "rising" in mon.warnings[0]


def test_sharded_gradients_give_the_statistics_of_the_whole_gradients():
    """Under FSDP2 each rank holds shards; the statistics are reduced over the shard group."""
    import copy

    from composer.utils import dist
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import distribute_tensor

    from llmfoundry_lite.callbacks.numerical_health import global_norm

    dist.initialize_dist("cpu")
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Linear(6, 6, bias=False), torch.nn.Linear(6, 3, bias=False))
    sharded = copy.deepcopy(plain)
    fully_shard(sharded)
    for p, q in zip(sharded.parameters(), plain.parameters(), strict=True):
        q.grad = torch.randn_like(q)
        q.grad[0, 0] = 0.0
        p.grad = distribute_tensor(q.grad, p.device_mesh, p.placements)
    ours, reference = grad_stats(sharded.named_parameters()), grad_stats(plain.named_parameters())
    assert ours.keys() == reference.keys()
    for layer in ours:
        assert ours[layer] == pytest.approx(reference[layer]), layer
    everything = torch.cat([q.grad.reshape(-1) for q in plain.parameters()])
    assert global_norm(ours) == pytest.approx(float(everything.norm()))


class Regression(ComposerModel):
    """y ≈ w·x whose loss is multiplied by the batch's third column: 1e38 poisons a batch (inf gradients)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1, bias=False)

    def forward(self, batch: list[torch.Tensor]) -> torch.Tensor:
        return self.linear(batch[0]).squeeze(-1)

    def loss(self, outputs: torch.Tensor, batch: list[torch.Tensor]) -> torch.Tensor:
        return ((outputs - batch[1]) ** 2).mean() * batch[2].max()


class Recorder(LoggerDestination):
    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.weights: list[torch.Tensor] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if "fp16/loss_scale" in metrics:
            self.rows.append(dict(metrics))

    def batch_end(self, state: State, logger: ComposerLogger) -> None:
        self.weights.append(state.model.linear.weight.detach().clone())


def test_composer_amp_fp16_loop_counts_the_skipped_step():
    """Composer's real training loop with grad scaling: CPU has no fp16 autocast (Composer's precision
    context is a no-op there), so the run swaps in a CPU GradScaler and amp_fp16 after construction."""
    from composer import Trainer

    torch.manual_seed(0)
    x = torch.randn(8, 2)
    factor = torch.tensor([1.0, 1.0, 1e38, 1e38, 1.0, 1.0, 1.0, 1.0])  # batch 2 of 4 is poisoned
    loader = DataLoader(TensorDataset(x, x.sum(1), factor), batch_size=2, shuffle=False)
    recorder, model = Recorder(), Regression()
    mon = NumericalHealthMonitor(interval=1000)
    trainer = Trainer(model=model, train_dataloader=loader, max_duration="4ba", device="cpu",
                      optimizers=torch.optim.SGD(model.parameters(), lr=0.1), callbacks=[mon], loggers=[recorder],
                      progress_bar=False, log_to_console=False)
    trainer.state.precision = Precision.AMP_FP16
    trainer.state.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    trainer.fit()
    assert [r["fp16/skipped_steps"] for r in recorder.rows] == [0, 1, 1, 1]
    assert [r["fp16/loss_scale"] for r in recorder.rows] == [1024.0, 512.0, 512.0, 512.0]
    assert list(mon.recent_skips) == [False, True, False, False] and mon.warnings == []
    w = recorder.weights
    assert torch.equal(w[1], w[0]) and not torch.equal(w[2], w[1])  # the skipped step left the weights alone
    trainer.close()


def test_config_fields_reach_the_monitor_and_are_validated():
    from pathlib import Path

    from llmfoundry_lite.config import load_config
    from llmfoundry_lite.training.builders import _numerical_health
    from llmfoundry_lite.training.config import TrainConfig
    from llmfoundry_lite.training.sections import NumericalHealthConfig

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(TrainConfig, root / "yamls/code-tiny.yaml",
                      ["callbacks.numerical_health.skip_warn=0.2", "callbacks.numerical_health.skip_window=7"])
    mon = _numerical_health(cfg)
    assert (mon.skip_warn, mon.recent_skips.maxlen) == (0.2, 7)
    with pytest.raises(ValueError, match=r"skip_warn=1.5 must be in \[0, 1\)"):
        NumericalHealthConfig(skip_warn=1.5)
    with pytest.raises(ValueError, match="skip_window=0 >= 1"):
        NumericalHealthConfig(skip_window=0)
