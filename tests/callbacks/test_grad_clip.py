"""Global-norm clipping: the pre-clip norm over every gradient (shards included), then one scale."""

import copy
from types import SimpleNamespace

import pytest
import torch

from llmfoundry_lite.callbacks.grad_clip import GlobalGradClip, global_grad_norm


class Logger:
    def __init__(self):
        self.metrics = {}

    def log_metrics(self, metrics, step=None):
        self.metrics.update(metrics)


def model_with_grads(scale: float) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False), torch.nn.Linear(8, 4, bias=False))
    for p in model.parameters():
        p.grad = torch.randn_like(p) * scale
    return model


def test_clips_to_max_norm_and_logs_the_norm_before_clipping():
    model = model_with_grads(10.0)
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm()
    logger = Logger()
    GlobalGradClip(max_norm=1.0).after_train_batch(SimpleNamespace(model=model), logger)
    assert logger.metrics["grad_norm/pre_clip"] == pytest.approx(float(expected), rel=1e-6)
    assert float(global_grad_norm(list(model.parameters()))) == pytest.approx(1.0, rel=1e-5)


def test_small_gradients_are_left_alone():
    model = model_with_grads(1e-3)
    before = [p.grad.clone() for p in model.parameters()]
    GlobalGradClip(max_norm=1.0).after_train_batch(SimpleNamespace(model=model), Logger())
    assert all(torch.equal(a, p.grad) for a, p in zip(before, model.parameters(), strict=True))


def test_fsdp2_shards_are_clipped_like_the_whole_model():
    """Composer 0.32.1's GradientClipping skips FSDP2 modules; ours clips DTensor shards correctly."""
    from composer.utils import dist
    from torch.distributed.fsdp import fully_shard

    dist.initialize_dist("cpu")
    plain = model_with_grads(10.0)
    sharded = copy.deepcopy(plain)
    fully_shard(sharded)
    for p, q in zip(sharded.parameters(), plain.parameters(), strict=True):
        p.grad = torch.distributed.tensor.distribute_tensor(q.grad, p.device_mesh, p.placements)
    GlobalGradClip(1.0).after_train_batch(SimpleNamespace(model=plain), Logger())
    logger = Logger()
    GlobalGradClip(1.0).after_train_batch(SimpleNamespace(model=sharded), logger)
    assert logger.metrics["grad_norm/pre_clip"] > 1.0
    for p, q in zip(sharded.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad.full_tensor(), q.grad)
