import math
from types import SimpleNamespace

import pytest
import torch
from composer.devices import DeviceCPU

from llmfoundry_lite.callbacks.activation_health import (
    BF16_NEAR,
    FP16_MAX,
    ActivationHealthMonitor,
    causal_logit_stats,
    tensor_stats,
)
from llmfoundry_lite.models.composer_model import ComposerDecoder
from llmfoundry_lite.models.config import ModelConfig

CFG = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=64, max_seq_len=16)


class Logger:
    def __init__(self):
        self.metrics = {}
        self.calls = 0

    def log_metrics(self, metrics, step=None):
        self.metrics.update(metrics)
        self.calls += 1


def tiny_model() -> ComposerDecoder:
    torch.manual_seed(0)
    return ComposerDecoder(CFG)


def state_at(model, batch_index: int) -> SimpleNamespace:
    return SimpleNamespace(model=model, timestamp=SimpleNamespace(batch=batch_index), device=DeviceCPU())


def run_step(mon, state, logger, inputs: list[torch.Tensor]) -> None:
    """One optimizer step as Composer drives it: a forward per microbatch, then AFTER_TRAIN_BATCH."""
    mon.batch_start(state, logger)
    for ids in inputs:
        mon.before_forward(state, logger)
        state.model({"input_ids": ids})
        mon.after_forward(state, logger)
    mon.after_train_batch(state, logger)


def manual_stats(model: ComposerDecoder, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every block's residual output, causal attention logits (dense, GQA heads repeated) and MLP
    output, by a hand-written forward: the values the hooks must have seen."""
    m, out = model.model, {}
    rope = m.rope[:, : ids.shape[1]]
    x = m.embed(ids)
    with torch.no_grad():
        for i, block in enumerate(m.blocks):
            h = block.attn_norm(x)
            q, k, _ = block.attn.qkv(h, rope[0], rope[1])
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            T = ids.shape[1]
            causal = torch.ones(T, T, dtype=torch.bool).tril()
            out[f"block{i}/attn_logits"] = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]))[..., causal]
            x = x + block.attn(h, rope, None)
            out[f"block{i}/mlp_out"] = block.mlp(block.mlp_norm(x))
            x = x + out[f"block{i}/mlp_out"]
            out[f"block{i}/resid"] = x
    return out


def test_tensor_stats_counts_fp16_overflow_and_near_bf16_max_with_nan_as_inf():
    x = torch.tensor([1.0, -7e4, 65504.0, 2e38, -float("inf"), float("nan")])
    absmax, counts = tensor_stats(x, chunk_elements=4)  # two chunks
    assert absmax.item() == math.inf
    assert counts.tolist() == [3, 2, 6]  # beyond 65504: 7e4, 2e38, inf; beyond BF16_NEAR: 2e38, inf; 6 values
    # bf16 compares in fp32: 65536 (bf16's next value after 65280) is beyond fp16's max, 65280 is not
    absmax, counts = tensor_stats(torch.tensor([65280.0, -65536.0], dtype=torch.bfloat16))
    assert (absmax.item(), counts.tolist()) == (65536.0, [1, 0, 2])
    assert BF16_NEAR == pytest.approx(1.6948e38, rel=1e-4) and FP16_MAX == 65504.0


def test_chunked_causal_logits_equal_a_dense_computation():
    torch.manual_seed(1)
    q, k = torch.randn(2, 4, 9, 8), torch.randn(2, 2, 9, 8)  # GQA: 4 query heads on 2 key heads
    q[1, 3, 7] *= 1e5  # one query row with logits beyond fp16
    dense = q @ k.repeat_interleave(2, dim=1).transpose(-1, -2) / math.sqrt(8)
    causal = dense[..., torch.ones(9, 9, dtype=torch.bool).tril()]
    absmax, counts = causal_logit_stats(q, k, chunk_elements=2 * 4 * 9 * 2)  # two query rows per chunk
    assert absmax.item() == pytest.approx(causal.abs().max().item(), rel=1e-6)
    assert counts.tolist() == [int((causal.abs() > FP16_MAX).sum()), 0, 2 * 4 * 45]
    assert 0 < counts[0] <= 8  # only key positions 0..7 of that row are causal: the future key 8 is not counted


def test_hook_values_equal_a_manual_forward_over_two_microbatches():
    model, logger = tiny_model(), Logger()
    mon = ActivationHealthMonitor(interval=5, chunk_elements=64)  # logits in chunks of 2 rows
    ids = [torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    with torch.no_grad():
        model.model.blocks[1].mlp.down_proj.weight.mul_(4e7)  # block1's MLP output partly beyond fp16
    run_step(mon, state_at(model, 4), logger, ids)  # step 5: sampled
    per_mb = [manual_stats(model, x) for x in ids]
    for key in per_mb[0]:
        values = torch.cat([s[key].reshape(-1) for s in per_mb])
        got = logger.metrics[f"act_health/{key}/absmax"]
        assert got == pytest.approx(values.abs().max().item(), rel=1e-6), key
        over = (values.abs() > FP16_MAX).float().mean().item()
        assert logger.metrics[f"act_health/{key}/fp16_overflow_frac"] == pytest.approx(over, abs=1e-12), key
        assert logger.metrics[f"act_health/{key}/bf16_near_frac"] == 0.0
    assert 0 < logger.metrics["act_health/block1/mlp_out/fp16_overflow_frac"] < 1
    assert logger.metrics["act_health/absmax"] == max(v for k, v in logger.metrics.items() if k.endswith("/absmax")
                                                      and k != "act_health/absmax")
    assert len(logger.metrics) == 2 * 3 * 3 + 1


def test_alerts_name_the_block_near_fp16_range_and_on_growth():
    model, logger = tiny_model(), Logger()
    mon = ActivationHealthMonitor(interval=1, fp16_margin=0.5, growth_factor=8.0, history=10)
    ids = [torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(3))]
    for step in range(3):  # three ordinary readings: the growth rule's baseline
        run_step(mon, state_at(model, step), logger, ids)
    assert mon.warnings == []
    with torch.no_grad():
        model.model.blocks[0].mlp.down_proj.weight.mul_(20.0)  # 20x: growth, far from fp16's range
    run_step(mon, state_at(model, 3), logger, ids)
    assert len(mon.warnings) >= 1 and all("grew" in w for w in mon.warnings)
    assert mon.warnings[0].startswith("step 4: block0/mlp_out absmax") and "over the median" in mon.warnings[0]
    with torch.no_grad():
        model.model.blocks[1].mlp.down_proj.weight.mul_(1e8)
    mon.warnings.clear()
    run_step(mon, state_at(model, 4), logger, ids)
    fp16 = [w for w in mon.warnings if "fp16 max" in w]
    assert any(w.startswith("step 5: block1/mlp_out absmax") for w in fp16)
    assert logger.metrics["act_health/block1/mlp_out/absmax"] > 0.5 * FP16_MAX


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_hooks_exist_only_during_a_sampled_forward():
    model, logger = tiny_model(), Logger()
    mon = ActivationHealthMonitor(interval=3)
    ids = torch.randint(0, 64, (1, 16))
    before = hook_count(model)
    for batch in (1, 3):  # steps 2 and 4: not sampled (interval 3, step 1 is)
        state = state_at(model, batch)
        mon.before_forward(state, logger)
        assert hook_count(model) == before
        mon.after_forward(state, logger)
        mon.after_train_batch(state, logger)
    assert logger.calls == 0
    state = state_at(model, 2)  # step 3
    mon.before_forward(state, logger)
    assert hook_count(model) == before + 3 * CFG.n_layers  # block, attention, MLP of each block
    model({"input_ids": ids})
    mon.after_forward(state, logger)
    assert hook_count(model) == before
    with torch.no_grad():
        model.model.embed.weight.mul_(1e3)
    model({"input_ids": ids})  # like a recomputation in backward (activation checkpointing): not seen
    mon.after_train_batch(state, logger)
    assert logger.calls == 1
    ref_logger = Logger()
    run_step(ActivationHealthMonitor(interval=3), state_at(tiny_model(), 2), ref_logger, [ids])
    assert logger.metrics == ref_logger.metrics and len(logger.metrics) == 19


def test_a_compiled_forward_runs_eagerly_on_sampled_steps_and_is_put_back():
    model, logger = tiny_model(), Logger()
    compiled = torch.compile(model, backend="eager")
    model.forward = compiled.dynamo_ctx(model.forward)  # what Composer's compile_config does
    wrapped = model.forward
    mon = ActivationHealthMonitor(interval=2)
    ids = [torch.randint(0, 64, (1, 16))]
    run_step(mon, state_at(model, 1), logger, ids)  # step 2: the first trace is without hooks
    assert model.forward is wrapped
    run_step(mon, state_at(model, 0), logger, ids)  # step 1: sampled
    assert model.forward is wrapped and hook_count(model) == 0
    ref_logger = Logger()
    run_step(ActivationHealthMonitor(interval=2), state_at(tiny_model(), 0), ref_logger, ids)
    assert logger.metrics == ref_logger.metrics and len(logger.metrics) == 19


def test_history_round_trips_through_the_state_dict():
    mon = ActivationHealthMonitor(history=2)
    mon._alert(1, {"block0/resid": (1.0, 0.0)})
    mon._alert(2, {"block0/resid": (2.0, 0.0)})
    mon._alert(3, {"block0/resid": (3.0, 0.0)})
    resumed = ActivationHealthMonitor(history=2)
    resumed.load_state_dict(mon.state_dict())
    assert resumed.state_dict() == {"readings": {"block0/resid": [2.0, 3.0]}}
    resumed._alert(4, {"block0/resid": (30.0, 0.0)})  # 30 > 8 x median(2, 3)
    assert resumed.warnings == ["step 4: block0/resid absmax 30 grew 12.0x over the median 2.5 of its last 2 readings (limit 8x)"]


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="activation_health.interval must be positive"):
        ActivationHealthMonitor(interval=0)
    with pytest.raises(ValueError, match="found no llmfoundry_lite Block"):
        ActivationHealthMonitor(interval=1).before_forward(state_at(torch.nn.Linear(2, 2), 0), Logger())


def test_in_composer_steps_one_and_interval_are_sampled_and_microbatches_accumulate():
    import copy

    from composer import Trainer
    from composer.loggers import LoggerDestination
    from torch.utils.data import DataLoader

    from llmfoundry_lite.training.parallel import token_data_spec

    class Recorder(LoggerDestination):
        def __init__(self):
            self.steps = {}

        def log_metrics(self, metrics, step=None):
            self.steps.setdefault(step, {}).update({k: v for k, v in metrics.items() if k.startswith("act_health/")})

    model, recorder = tiny_model(), Recorder()
    initial = copy.deepcopy(model)
    rows = torch.randint(0, 64, (6, 16), generator=torch.Generator().manual_seed(4))
    loader = DataLoader([{"input_ids": r, "labels": r} for r in rows], batch_size=2)
    mon = ActivationHealthMonitor(interval=2)
    trainer = Trainer(model=model, train_dataloader=token_data_spec(loader), max_duration="3ba", device="cpu",
                      optimizers=torch.optim.SGD(model.parameters(), lr=0.1), callbacks=[mon], loggers=[recorder],
                      device_train_microbatch_size=1, progress_bar=False, log_to_console=False)
    trainer.fit()
    trainer.close()
    logged = {step: m for step, m in recorder.steps.items() if m}
    assert sorted(logged) == [0, 1] and len(logged[0]) == len(logged[1]) == 19  # steps 1 and 2 of 3
    expected = [manual_stats(initial, rows[i : i + 1]) for i in (0, 1)]  # step 1: two microbatches of one row
    for key in expected[0]:
        want = max(s[key].abs().max().item() for s in expected)
        assert logged[0][f"act_health/{key}/absmax"] == pytest.approx(want, rel=1e-5), key
    assert logged[1]["act_health/block0/resid/absmax"] != logged[0]["act_health/block0/resid/absmax"]


def test_the_config_section_builds_the_monitor_and_validates():
    from pathlib import Path

    from llmfoundry_lite.config import load_config
    from llmfoundry_lite.training.builders import build_callbacks
    from llmfoundry_lite.training.config import TrainConfig

    yaml = Path(__file__).resolve().parents[2] / "yamls/code-tiny.yaml"
    base = ["callbacks.speed_monitor.peak_flops=1e11", "callbacks.numerical_health=null"]
    cfg = load_config(TrainConfig, yaml, [*base, "callbacks.activation_health.interval=7",
                                          "callbacks.activation_health.growth_factor=4"])
    (mon,) = [c for c in build_callbacks(cfg) if isinstance(c, ActivationHealthMonitor)]
    assert (mon.interval, mon.fp16_margin, mon.growth_factor, mon.history) == (7, 0.5, 4.0, 10)
    off = load_config(TrainConfig, yaml, [*base, "callbacks.activation_health=null"])
    assert not any(isinstance(c, ActivationHealthMonitor) for c in build_callbacks(off))
    with pytest.raises(ValueError, match="callbacks.activation_health.history must be positive"):
        load_config(TrainConfig, yaml, ["callbacks.activation_health.history=0"])


def test_blocks_are_found_through_wrappers_by_their_index():
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    from llmfoundry_lite.callbacks.activation_health import find_blocks

    decoder = tiny_model()
    decoder.model.blocks[1] = checkpoint_wrapper(decoder.model.blocks[1])  # activation checkpointing
    outer = torch.nn.Module()
    outer.module = decoder  # DDP's attribute
    outer.reference = tiny_model().model  # a second decoder beside it keeps its path
    found = find_blocks(outer)
    assert list(found) == ["block0", "block1", "reference.blocks.0", "reference.blocks.1"]
    assert found["block1"] is decoder.model.blocks[1]._checkpoint_wrapped_module
