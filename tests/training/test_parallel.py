"""The parallelism plan: meshes from the sharding strategy, token counts for Composer's clock and weights."""

import pytest
import torch

from llmfoundry_lite.training.parallel import count_tokens, describe, fsdp2_config, replicate_degree
from llmfoundry_lite.training.sections import FSDPConfig


@pytest.mark.parametrize(("strategy", "degree", "world", "local", "expected"), [
    ("FULL_SHARD", None, 16, 8, 1),
    ("SHARD_GRAD_OP", None, 16, 8, 1),
    ("HYBRID_SHARD", None, 64, 8, 8),  # default: one replica per node, shard inside the node
    ("HYBRID_SHARD", 4, 64, 8, 4),
    ("HYBRID_SHARD", None, 8, 8, 1),  # one node: a (1, 8) mesh, stated as such
    ("NO_SHARD", None, 16, 8, 16),
])
def test_replicate_degree(strategy, degree, world, local, expected):
    cfg = FSDPConfig(sharding_strategy=strategy, data_parallel_replicate_degree=degree)
    assert replicate_degree(cfg, world, local) == expected
    assert f"mesh (replicate {expected} x shard {world // expected})" in describe(cfg, world, local)


def test_bad_replicate_degrees_are_refused_not_degraded():
    with pytest.raises(ValueError, match="data_parallel_replicate_degree=3 does not divide the 16 ranks"):
        replicate_degree(FSDPConfig(sharding_strategy="HYBRID_SHARD", data_parallel_replicate_degree=3), 16, 8)
    with pytest.raises(ValueError, match="needs sharding_strategy=HYBRID_SHARD"):
        replicate_degree(FSDPConfig(sharding_strategy="FULL_SHARD", data_parallel_replicate_degree=2), 16, 8)


def test_fsdp2_config_states_every_choice():
    full = fsdp2_config(FSDPConfig(state_dict_type="sharded", mixed_precision="PURE", activation_checkpointing=True), 1, 1)
    assert (full.reshard_after_forward, full.state_dict_type, full.mixed_precision, full.activation_checkpointing) == (
        True, "sharded", "DEFAULT", True)  # PURE parameters, fsdp_config.reduce_dtype (fp32) for the reduction
    # Composer builds the mesh from these degrees (and overwrites device_mesh with it).
    assert (full.data_parallel_replicate_degree, full.data_parallel_shard_degree) == (None, -1)
    hybrid = fsdp2_config(FSDPConfig(sharding_strategy="HYBRID_SHARD"), 64, 8)
    assert (hybrid.data_parallel_replicate_degree, hybrid.data_parallel_shard_degree) == (8, -1)
    assert fsdp2_config(FSDPConfig(sharding_strategy="SHARD_GRAD_OP"), 1, 1).reshard_after_forward is False


def test_token_counts_leave_out_padding_and_unlabelled_positions():
    batch = {
        "input_ids": torch.tensor([[5, 6, 7, 1], [8, 9, 1, 1]]),
        "labels": torch.tensor([[5, 6, 7, -100], [-100, -100, -100, -100]]),
        "segment_ids": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]),
    }
    # total: 5 non-padding tokens; loss-generating: labels at positions >= 1 that are not -100 (6, 7).
    assert count_tokens(batch) == {"total": 5, "loss_generating": 2}


@pytest.mark.parametrize(("fsdp", "world", "rank", "expected"), [
    (FSDPConfig(), 8, 0, None),  # rank 0 materialises and initialises the model
    (FSDPConfig(), 8, 3, "meta"),  # the others receive their shards from it
    (None, 8, 3, None),  # DDP: every rank holds a full replica anyway
    (FSDPConfig(), 1, 0, None),
])
def test_only_rank_0_materialises_the_model_under_fsdp(monkeypatch, fsdp, world, rank, expected):
    from composer.utils import dist

    from llmfoundry_lite.models.composer_model import ComposerDecoder
    from llmfoundry_lite.models.config import ModelConfig
    from llmfoundry_lite.training.parallel import model_init_device

    monkeypatch.setattr(dist, "get_world_size", lambda: world)
    monkeypatch.setattr(dist, "get_global_rank", lambda: rank)
    device = model_init_device(fsdp)
    assert device == expected
    model = ComposerDecoder(ModelConfig(d_model=64, n_layers=2, n_heads=4, vocab_size=512, max_seq_len=32),
                            init_device=device)
    assert all(p.is_meta == (expected == "meta") for p in model.parameters())
    assert not model.eval_metrics["LanguageCrossEntropy"].sum_loss.is_meta  # metrics stay real tensors
