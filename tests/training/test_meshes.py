"""The meshes we ship, at their real shape, on gloo ranks (CPU): a 2 x 2 HYBRID_SHARD mesh (2 replicas
of 2 shards), a tied embedding/head under FSDP with meta-device initialisation, and a sharded checkpoint
written by 2 ranks resumed by 4 and by 1 — each step's loss against DDP's or the uninterrupted run's.

Every run ties its head to the embedding (``model.tie_embeddings=true``), so the tie is checked on
every mesh and after every checkpoint round trip without runs of its own; the runs are module-scoped
and shared between the assertions (5 launches, 13 ranks in all)."""

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
import torch

from llmfoundry_lite.callbacks.metrics_file import read_metrics
from llmfoundry_lite.models.checkpoint_io import iter_transformer_tensors, locate_checkpoint
from llmfoundry_lite.models.load import load_for_inference
from tests.training.shards import launch_ranks, tiny_overrides

LOSS = "loss/train/total"
STEPS, RESUME_AT = 6, 2  # checkpoints every 2 batches; the resumed runs redo steps 2..5
REL = 1e-5  # fp32: the same token-mean objective, reduced in another order on another mesh
GLOBAL_BATCH = "8"  # divisible by 1, 2 and 4 ranks: every world size trains the same global batches
TIED = "model.tie_embeddings=true"
FSDP = ["fsdp_config.sharding_strategy=FULL_SHARD", "fsdp_config.state_dict_type=sharded"]
HSDP = ["fsdp_config.sharding_strategy=HYBRID_SHARD", "fsdp_config.data_parallel_replicate_degree=2",
        "fsdp_config.state_dict_type=sharded"]


def train(n: int, shards: Path, save: Path, extra: list[str]) -> str:
    """``composer -n n train.py`` on the smallest model that still has 2 blocks and 2 heads; its stdout."""
    overrides = tiny_overrides(shards, save, **{
        "model.d_model": "32", "model.n_heads": "2", "global_train_batch_size": GLOBAL_BATCH,
        "max_duration": f"{STEPS}ba", "eval_interval": f"{STEPS}ba", "eval_subset_num_batches": "1",
    })
    return launch_ranks(n, ["train.py", "yamls/code-tiny.yaml", *overrides, TIED, *extra]).stdout


def assert_losses_match(run: dict[int, float], reference: dict[int, float], steps: list[int]) -> None:
    assert list(run) == steps, run
    for step in steps:
        assert run[step] == pytest.approx(reference[step], rel=REL), (step, run, reference)


@pytest.fixture(scope="module")
def shards(tiny_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("meshes") / "shards"  # this module's own copy: runs here are sequential
    shutil.copytree(tiny_shards, out)
    return out


@pytest.fixture(scope="module")
def ddp(shards, tmp_path_factory):
    save = tmp_path_factory.mktemp("ddp") / "run"
    assert "DDP over 2 rank(s)" in train(2, shards, save, [])
    return save


@pytest.fixture(scope="module")
def fsdp(shards, tmp_path_factory):
    """2 ranks FULL_SHARD, sharded checkpoints: rank 1 builds the model on meta. The uninterrupted run."""
    save = tmp_path_factory.mktemp("fsdp") / "run"
    train(2, shards, save, FSDP)
    return save


def resume(fsdp: Path, n: int, shards: Path, save: Path) -> str:
    """A new save folder holding only the 2-rank run's step-2 checkpoint, resumed (autoresume) on n ranks."""
    save.mkdir(parents=True)
    shutil.copytree(fsdp / f"ep0-ba{RESUME_AT}", save / f"ep0-ba{RESUME_AT}")
    os.symlink(f"ep0-ba{RESUME_AT}", save / "latest-rank0.pt")
    return train(n, shards, save, FSDP)


@pytest.mark.slow
def test_hybrid_shard_2x2_matches_ddp(shards, ddp, tmp_path):
    save = tmp_path / "run"
    out = train(4, shards, save, HSDP)
    assert "FSDP2 HYBRID_SHARD: mesh (replicate 2 x shard 2), sharded checkpoints" in out
    metrics = save / "metrics.jsonl"
    assert read_metrics(metrics, "parallel/mesh_replicate")[0] == 2
    assert read_metrics(metrics, "parallel/mesh_shard")[0] == 2
    assert read_metrics(metrics, "parallel/local_param_fraction")[0] == pytest.approx(0.5, abs=0.01)
    assert read_metrics(metrics, "parallel/tied_params")[0] == 1  # on every one of the 4 ranks
    assert_losses_match(read_metrics(metrics, LOSS), read_metrics(ddp / "metrics.jsonl", LOSS), list(range(STEPS)))
    assert (save / "latest-rank0.pt").resolve().name == f"ep0-ba{STEPS}"


@pytest.mark.slow
def test_tied_embeddings_under_fsdp_with_meta_init_match_ddp_and_stay_tied(ddp, fsdp):
    ddp_metrics, fsdp_metrics = ddp / "metrics.jsonl", fsdp / "metrics.jsonl"
    assert read_metrics(ddp_metrics, "parallel/tied_params")[0] == 1
    # After sharding, on every rank (rank 1 built on meta and received rank 0's weights).
    assert read_metrics(fsdp_metrics, "parallel/tied_params")[0] == 1
    assert read_metrics(fsdp_metrics, "parallel/local_param_fraction")[0] == pytest.approx(0.5, abs=0.01)
    assert_losses_match(read_metrics(fsdp_metrics, LOSS), read_metrics(ddp_metrics, LOSS), list(range(STEPS)))
    # The sharded checkpoints hold one tensor under both names, and load back as one parameter.
    for step in (RESUME_AT, STEPS):
        weights = dict(iter_transformer_tensors(locate_checkpoint(fsdp / f"ep0-ba{step}")))
        assert torch.equal(weights["embed.weight"], weights["lm_head.weight"]), step
    model, _ = load_for_inference(str(fsdp))
    assert model.lm_head.weight is model.embed.weight


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [4, 1])
def test_sharded_checkpoint_of_2_ranks_resumes_on_other_world_sizes(ranks, shards, fsdp, tmp_path):
    save = tmp_path / "run"
    out = resume(fsdp, ranks, shards, save)
    assert f"mesh (replicate 1 x shard {ranks})" in out
    metrics = save / "metrics.jsonl"
    assert read_metrics(metrics, "parallel/tied_params")[RESUME_AT] == 1  # after the load, every rank
    # Same global batches in the same order at any world size: each step's loss is the uninterrupted run's.
    steps = list(range(RESUME_AT, STEPS))
    assert_losses_match(read_metrics(metrics, LOSS), read_metrics(fsdp / "metrics.jsonl", LOSS), steps)


def test_aliased_parameter_names_counts_a_tie_and_sees_it_broken():
    from llmfoundry_lite.models.config import ModelConfig
    from llmfoundry_lite.models.transformer import Transformer
    from llmfoundry_lite.training.parallel import aliased_parameter_names

    cfg = ModelConfig(d_model=32, n_layers=1, n_heads=2, vocab_size=64, max_seq_len=16)
    assert aliased_parameter_names(Transformer(cfg)) == 0
    tied = Transformer(dataclasses.replace(cfg, tie_embeddings=True))
    assert aliased_parameter_names(tied) == 1
    tied.lm_head.weight = torch.nn.Parameter(tied.embed.weight.detach().clone())  # equal values, two tensors
    assert aliased_parameter_names(tied) == 0
