"""Our fused AdamW takes exactly Composer's DecoupledAdamW steps (decay scaled by lr/lr0)."""

import copy

import pytest
import torch
from composer.optim import DecoupledAdamW

from llmfoundry_lite.training.adamw import FusedDecoupledAdamW


@pytest.mark.parametrize("fused", [True, False])
def test_same_trajectory_as_composer_decoupled_adamw_under_a_schedule(fused):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4))
    ref_model = copy.deepcopy(model)
    ours = FusedDecoupledAdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-2, fused=fused)
    ref = DecoupledAdamW(ref_model.parameters(), lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-2)
    schedules = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: min(1.0, (s + 1) / 5) * 0.9**s) for o in (ours, ref)]
    for _ in range(20):
        x = torch.randn(8, 16)
        for m, opt in ((model, ours), (ref_model, ref)):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
        for s in schedules:
            s.step()
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    assert ours.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"])
