import torch

from llmfoundry_lite.training.lion import DecoupledLionW


def test_lion_step_matches_the_update_rule():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = DecoupledLionW([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    p.grad = torch.tensor([0.3, -0.2, 0.0])
    opt.step()
    # m = 0: update = sign(0.1·g); decay factor (lr/lr0)·wd = 0.5
    expected = torch.tensor([1.0, -2.0, 0.5]) * 0.5 - 0.1 * torch.tensor([1.0, -1.0, 0.0])
    torch.testing.assert_close(p.detach(), expected)
    torch.testing.assert_close(opt.state[p]["exp_avg"], 0.01 * torch.tensor([0.3, -0.2, 0.0]))
    p.grad = torch.tensor([-0.1, -0.1, -0.1])
    before = p.detach().clone()
    opt.step()
    c = 0.9 * torch.tensor([0.003, -0.002, 0.0]) + 0.1 * torch.tensor([-0.1, -0.1, -0.1])
    torch.testing.assert_close(p.detach(), before * 0.5 - 0.1 * torch.sign(c))
