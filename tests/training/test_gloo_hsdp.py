"""FSDP2 on gloo with the installed torch (2.7 pinned, newer ones via `make test-torch-next`):
HYBRID_SHARD and FULL_SHARD gradients equal the single-process gradient of the same global batch,
and a torch release the gloo fixes were not checked on is refused before training, not patched blindly."""

import re

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from llmfoundry_lite.training import gloo_hsdp

WORLD = 2
ROWS_PER_RANK = 4


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))


def _batch() -> torch.Tensor:
    return torch.randn(WORLD * ROWS_PER_RANK, 8, generator=torch.Generator().manual_seed(1))


def _rank(rank: int, init_file: str, mesh_shape: tuple[int, int], out: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        gloo_hsdp.enable_gloo_hsdp()
        mesh = init_device_mesh("cpu", mesh_shape, mesh_dim_names=("replicate", "shard"))
        model = _model()
        fully_shard(model, mesh=mesh)
        local = _batch()[rank * ROWS_PER_RANK:(rank + 1) * ROWS_PER_RANK]
        model(local).pow(2).mean().backward()
        grads = {name: p.grad.full_tensor() for name, p in model.named_parameters()}
        if rank == 0:
            torch.save(grads, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("mesh_shape", [(2, 1), (1, 2)], ids=["HYBRID_SHARD", "FULL_SHARD"])
def test_fsdp2_gradients_on_gloo_match_one_process(mesh_shape, tmp_path):
    if not gloo_hsdp.supported(torch.__version__):
        pytest.skip(f"torch {torch.__version__} is refused by gloo_hsdp (see the test below)")
    out = tmp_path / "grads.pt"
    mp.spawn(_rank, args=(str(tmp_path / "init"), mesh_shape, str(out)), nprocs=WORLD, join=True)
    reference = _model()
    reference(_batch()).pow(2).mean().backward()  # the mean over the global batch = FSDP's average
    grads = torch.load(out)
    for name, p in reference.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("version", ["2.7.0", "2.7.1+cpu", "2.9.1+cu128", "2.15.0+cu132"])
def test_checked_releases_are_accepted(version):
    assert gloo_hsdp.supported(version)


@pytest.mark.parametrize("version", ["2.6.0", "2.8.0+cu128", "2.16.0", "3.0.0"])
def test_unchecked_releases_are_refused(version, monkeypatch):
    assert not gloo_hsdp.supported(version)
    monkeypatch.setattr(torch, "__version__", version)
    with pytest.raises(RuntimeError, match=f"found {re.escape(version)}"):
        gloo_hsdp.enable_gloo_hsdp()
