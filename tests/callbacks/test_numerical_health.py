from types import SimpleNamespace

import pytest
import torch

from llmfoundry_lite.callbacks.numerical_health import NumericalHealthMonitor, grad_stats, layer_of, underflow_fraction


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


def test_monitor_warns_on_fp16_underflow_and_logs_loss_scale():
    model = torch.nn.Linear(10, 1, bias=False)
    model.weight.grad = torch.tensor([[0.0] * 9 + [1e-3]])
    state = SimpleNamespace(
        model=model, timestamp=SimpleNamespace(batch=0), precision=SimpleNamespace(value="amp_fp16"),
        scaler=SimpleNamespace(is_enabled=lambda: True, get_scale=lambda: 1024.0),
    )
    mon, logger = NumericalHealthMonitor(interval=10, underflow_warn=0.05), Logger()
    mon.after_train_batch(state, logger)
    assert logger.metrics["grad_health/underflow_frac"] == pytest.approx(0.9)
    assert logger.metrics["grad_health/loss_scale"] == 1024.0
    assert len(mon.warnings) == 1 and "90.0%" in mon.warnings[0] and "amp_bf16" in mon.warnings[0]
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
