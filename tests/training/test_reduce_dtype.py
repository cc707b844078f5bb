"""fsdp_config.reduce_dtype: gradients are reduced in fp32 unless a run asks for bf16, and that is what
reaches FSDP2's reduce-scatter after Composer wraps the model (not only what the config says)."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.distributed as torch_dist
from composer.core import Precision
from composer.distributed.fsdp2 import prepare_fully_shard
from composer.distributed.fsdp2_utils import generate_composer_model_policy
from torch.distributed.fsdp._fully_shard import _fsdp_param_group

from llmfoundry_lite.models.composer_model import ComposerDecoder
from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.training.parallel import fsdp2_config
from llmfoundry_lite.training.sections import FSDPConfig


@pytest.fixture
def one_rank(tmp_path):
    """A one-rank gloo process group: enough for fully_shard and its reduce-scatter on CPU."""
    if torch_dist.is_initialized():  # an in-process Trainer earlier in the session may have started one
        assert torch_dist.get_world_size() == 1, "a multi-rank default group is open in the test process"
        yield
        return
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    torch_dist.destroy_process_group()


def reduce_dtypes_of_one_step(cfg: FSDPConfig, precision: Precision) -> set[torch.dtype]:
    """Wrap a tiny decoder as Composer's trainer does (``parallelize_composer_model``'s wrap policy and
    ``prepare_fully_shard`` with our FSDP2Config; the trainer's own entry refuses amp_bf16 on CPU), run one forward/backward and return the dtypes FSDP2 reduce-scattered in."""
    torch.manual_seed(0)
    model = ComposerDecoder(ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=64,
                                        max_seq_len=16))
    prepare_fully_shard(model, fsdp2_config(cfg, 1, 1), precision, generate_composer_model_policy(model))
    seen: set[torch.dtype] = set()
    original = _fsdp_param_group.foreach_reduce

    signature = inspect.signature(original)  # by name: torch 2.11 added reduce_scatter_comm, 2.15 dropped orig_dtype

    def recording(*args, **kwargs):
        bound = signature.bind(*args, **kwargs).arguments
        seen.add(bound["reduce_dtype"] or bound["unsharded_grads"][0].dtype)  # what foreach_reduce itself resolves
        return original(*args, **kwargs)

    _fsdp_param_group.foreach_reduce = recording
    try:
        ids = torch.randint(0, 64, (2, 16))
        model.loss(model({"input_ids": ids}), {"input_ids": ids, "labels": ids}).backward()
    finally:
        _fsdp_param_group.foreach_reduce = original
    return seen


@pytest.mark.parametrize(("mixed_precision", "reduce_dtype", "expected"), [
    ("DEFAULT", "fp32", torch.float32),
    ("PURE", "fp32", torch.float32),  # the presets' old PURE no longer reduces in bf16 by default
    ("PURE", "bf16", torch.bfloat16),
    ("FULL", "fp32", torch.float32),
    ("FULL", "bf16", torch.bfloat16),
])
def test_reduce_scatter_runs_in_the_configured_dtype_under_bf16_params(one_rank, mixed_precision, reduce_dtype,
                                                                        expected):
    cfg = FSDPConfig(mixed_precision=mixed_precision, reduce_dtype=reduce_dtype)
    assert reduce_dtypes_of_one_step(cfg, Precision.AMP_BF16) == {expected}


def test_default_reduces_in_fp32():
    assert FSDPConfig().reduce_dtype == "fp32"
    assert FSDPConfig(mixed_precision="PURE").composer_mixed_precision() == "DEFAULT"


def test_unknown_reduce_dtype_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"fsdp_config.reduce_dtype='fp16'; choose from \['bf16', 'fp32'\]"):
        FSDPConfig(reduce_dtype="fp16")


def test_every_bf16_preset_states_how_gradients_are_reduced():
    from omegaconf import OmegaConf as om

    from tests.training.shards import ROOT

    presets = sorted([*(ROOT / "yamls").glob("*.yaml"), *(ROOT / "yamls" / "finetune").glob("*.yaml")])
    bf16 = [p for p in presets if om.load(p).get("precision") == "amp_bf16"]
    assert len(bf16) >= 5  # code-125m/350m/1b/3b and the 1b LoRA
    for path in bf16:
        raw = om.to_container(om.load(path))
        assert "fsdp_config" in raw, f"{path.name}: state fsdp_config (null = DDP, which reduces in fp32)"
        if raw["fsdp_config"] is not None:
            assert raw["fsdp_config"].get("reduce_dtype") in ("fp32", "bf16"), f"{path.name}: state reduce_dtype"


@pytest.mark.parametrize("precision", ["fp32", "amp_fp16"])
def test_bf16_reduction_is_refused_where_the_run_has_no_bf16(precision):
    """bf16 means the run's low precision: an fp32 or fp16 run would reduce in fp32 or fp16, not what was asked."""
    from llmfoundry_lite.training.config import TrainConfig

    with pytest.raises(ValueError, match=r"reduce_dtype=bf16 .* precision=" + precision):
        TrainConfig(precision=precision, fsdp_config=FSDPConfig(reduce_dtype="bf16"))
    TrainConfig(precision=precision, fsdp_config=FSDPConfig(reduce_dtype="bf16", mixed_precision="FULL"))
    TrainConfig(precision="amp_bf16", fsdp_config=FSDPConfig(reduce_dtype="bf16"))
