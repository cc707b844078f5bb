"""Roll back and skip, proved with the fault-injection drill: a NaN and a spike injected into real runs
(1 rank, and 2-rank FSDP2 with sharded checkpoints, both on the strict NCCL device rule) are undone, exactly
the poisoned samples are skipped, none of them reaches an optimizer step, and the run ends within 2% of an
uninjected run's loss; a mid-window event restores the snapshot exactly; ``max_rollbacks`` stops the run."""

import json
import shutil

import pytest
import torch

from llmfoundry_lite.callbacks.metrics_file import read_metrics
from llmfoundry_lite.callbacks.rollback import RollbackGuard
from llmfoundry_lite.callbacks.snapshot import Snapshot
from llmfoundry_lite.models.checkpoint_io import iter_model_state, locate_checkpoint
from llmfoundry_lite.models.load import load_for_inference
from llmfoundry_lite.training.adamw import FusedDecoupledAdamW
from tests.callbacks.rollback_rank import run
from tests.training.shards import ROOT, launch_ranks, tiny_overrides, write_shards

INJECT = "fault_injection={nan_at_batch: 12, spike_at_batch: 20}"


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory):
    """MDS shards (seq 64) of real stdlib source, as tests/training's fixture makes them."""
    return write_shards(tmp_path_factory.mktemp("shards"))


def overrides(shards, save, steps: int = 30, *extra: str) -> list[str]:
    """code-tiny on the fixture shards with the guard on: a snapshot every 4 batches, checkpoints on them."""
    return [*tiny_overrides(shards, save, max_duration=f"{steps}ba", save_interval="4ba", eval_interval=f"{steps}ba"),
            "rollback.enabled=true", "rollback.snapshot_interval=4", *extra]


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def final_eval_loss(save) -> float:
    return json.loads((save / "train_summary.json").read_text())["final_eval_loss"]


def model_tensors(path) -> dict[str, torch.Tensor]:
    return {k: t.clone() for k, t in iter_model_state(locate_checkpoint(path))}


def assert_rolled_back_over_the_poison(save, stepped: list[list[int]], batches: int) -> None:
    """Both injected events rolled back, the skipped samples are exactly the poisoned ones, none of them
    was in a batch whose optimizer step had gradients, and every other batch was applied."""
    poisoned = {row["batch"]: row["sample_indices"] for row in read_jsonl(save / "fault_injection.jsonl")}
    events = read_jsonl(save / "loss_spikes.jsonl")
    assert [(e["step"], e["trigger"], e["action"]) for e in events] == [
        (12, "nonfinite_loss", "rollback"), (20, "spike", "rollback")]
    for e in events:
        rb = e["rollback"]
        assert rb["skipped_batches"] == [e["step"]] and rb["restored_step"] == e["step"]
        assert sorted(rb["skipped_sample_indices"]) == sorted(poisoned[e["step"]]) == sorted(e["sample_indices"])
        assert rb["skipped_by_stream"] == {"default": len(poisoned[e["step"]])}
    assert events[1]["loss"] > 50 * events[1]["baseline_mean"]  # the spike, scaled 100x, as the guard saw it
    # The guard's own reduction (microbatches and ranks, weighted by tokens) gives Composer's logged batch loss.
    assert events[1]["loss"] == pytest.approx(read_metrics(save / "metrics.jsonl", "loss/train/total")[20], rel=1e-5)
    applied = {i for batch in stepped for i in batch}
    assert not applied & {i for ids in poisoned.values() for i in ids}
    assert len(stepped) == batches - 2
    metrics = [json.loads(line) for line in (save / "metrics.jsonl").read_text().splitlines()]
    assert max(row.get("rollback/count", 0) for row in metrics) == 2


@pytest.fixture(scope="module")
def clean_eval_loss(tiny_shards, tmp_path_factory) -> float:
    """The final eval loss of the same run without the drill (1 rank; 2 ranks see the same global batches)."""
    out = tmp_path_factory.mktemp("clean")
    run(out, overrides(tiny_shards, out / "run"))
    return final_eval_loss(out / "run")


def test_one_rank_rolls_back_a_nan_and_a_spike_and_ends_like_a_clean_run(tiny_shards, clean_eval_loss, tmp_path):
    result = run(tmp_path, overrides(tiny_shards, tmp_path / "run", 30, INJECT, "device_train_microbatch_size=2"))
    save = tmp_path / "run"
    assert_rolled_back_over_the_poison(save, result["stepped"], 30)
    calls = [tuple(c) for c in result["calls"] if c[1] == "llmfoundry_lite.callbacks.rollback"]
    assert calls.count(("all_reduce", "llmfoundry_lite.callbacks.rollback")) == 30  # one decision per batch
    assert calls.count(("all_gather_object", "llmfoundry_lite.callbacks.rollback")) == 2  # one per event
    assert final_eval_loss(save) == pytest.approx(clean_eval_loss, rel=0.02)
    # What was restored is on disk for the replay: the weights before batch 12, as the checkpoint at 12 holds them.
    restored = model_tensors(save / "rollbacks/rollback-1-ba12.pt")
    for name, t in model_tensors(save / "ep0-ba12-rank0.pt").items():
        torch.testing.assert_close(restored[name], t, rtol=0, atol=0)
    load_for_inference(str(save / "rollbacks/rollback-2-ba20.pt"))


@pytest.mark.slow
def test_two_ranks_roll_back_together_under_fsdp2_with_sharded_checkpoints_and_ddp(tiny_shards, clean_eval_loss,
                                                                                    tmp_path):
    shards = tmp_path / "shards"  # streaming refuses two live jobs on one directory
    shutil.copytree(tiny_shards, shards)
    microbatches = "device_train_microbatch_size=1"  # two per rank: the guard sums them like Composer
    for name, extra in (("fsdp", ["fsdp_config={state_dict_type: sharded}", microbatches]), ("ddp", [microbatches])):
        out = tmp_path / name
        out.mkdir()
        launch_ranks(2, ["-m", "tests.callbacks.rollback_rank", str(out), *overrides(shards, out / "run", 30, INJECT, *extra)])
        ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
        stepped = [a + b for a, b in zip(ranks[0]["stepped"], ranks[1]["stepped"], strict=True)]  # both ranks' halves
        assert_rolled_back_over_the_poison(out / "run", stepped, 30)
        assert final_eval_loss(out / "run") == pytest.approx(clean_eval_loss, rel=0.02)
    save = tmp_path / "fsdp/run"
    restored = model_tensors(save / "rollbacks/rollback-2-ba20.pt")  # gathered from both ranks' shards
    for name, t in model_tensors(save / "ep0-ba20").items():  # the sharded checkpoint before batch 20
        torch.testing.assert_close(restored[name], t, rtol=0, atol=0)


def test_an_event_mid_window_restores_the_snapshot_and_skips_the_window(tiny_shards, tmp_path):
    save = tmp_path / "run"
    run(tmp_path, overrides(tiny_shards, save, 16, "fault_injection={nan_at_batch: 14}"))
    (event,) = read_jsonl(save / "loss_spikes.jsonl")
    rb = event["rollback"]
    assert (event["step"], rb["restored_step"], rb["skipped_batches"]) == (14, 12, [12, 13, 14])
    assert rb["skipped_samples"] == 12 and set(event["sample_indices"]) <= set(rb["skipped_sample_indices"])
    # Batches 12 and 13 were applied, then undone: the restored weights are the checkpoint's at 12.
    restored = model_tensors(save / "rollbacks/rollback-1-ba12.pt")
    for name, t in model_tensors(save / "ep0-ba12-rank0.pt").items():
        torch.testing.assert_close(restored[name], t, rtol=0, atol=0)
    after = model_tensors(save / "ep0-ba16-rank0.pt")
    assert all(torch.isfinite(t).all() for t in after.values())


def test_max_rollbacks_zero_stops_the_run_with_a_report(tiny_shards, tmp_path, capsys):
    from llmfoundry_lite.cli.train import main

    save = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:  # composer train.py: every rank exits 3 with the report's message
        main([str(ROOT / "yamls/code-tiny.yaml"), *overrides(tiny_shards, save, 12, "rollback.max_rollbacks=0",
                                                 "fault_injection={nan_at_batch: 5}")])
    assert stop.value.code == 3
    assert "error: training stopped at step 5: nonfinite_loss after 0 rollback(s)" in capsys.readouterr().err
    report = json.loads((save / "rollback_report.json").read_text())
    assert (report["stopped_at_step"], report["trigger"], report["rollbacks"]) == (5, "nonfinite_loss", 0)
    assert [e["action"] for e in read_jsonl(save / "loss_spikes.jsonl")] == ["stop"]
    assert not (save / "rollbacks").exists()


def test_a_snapshot_restores_parameters_and_optimizer_state_exactly():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    opt = FusedDecoupledAdamW(model.parameters(), lr=1e-2, fused=False)

    def step() -> None:
        model(torch.randn(3, 4)).square().sum().backward()
        opt.step()
        opt.zero_grad()

    step()
    snap = Snapshot(model, [opt], None, batch=1, device="cpu")
    before = ({k: v.clone() for k, v in model.state_dict().items()},
              {i: {k: v.clone() for k, v in s.items()} for i, s in opt.state_dict()["state"].items()})
    step()
    step()
    snap.restore(model, [opt], None)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[0][k], rtol=0, atol=0)
    for i, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            torch.testing.assert_close(v, before[1][i][k], rtol=0, atol=0)
    n = sum(p.numel() for p in model.parameters())
    assert snap.nbytes() == (4 * n, 4 * 2 * n + 4 * 4)  # exp_avg, exp_avg_sq, and one fp32 step per tensor


def test_a_parameter_without_state_at_the_snapshot_loses_what_it_gained():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    snap = Snapshot(torch.nn.ParameterList([p]), [opt], None, batch=0, device="cpu")
    p.grad = torch.ones(3)
    opt.step()
    snap.restore(torch.nn.ParameterList([p]), [opt], None)
    assert p.tolist() == [1.0, 1.0, 1.0] and p not in opt.state


@pytest.mark.parametrize(("loss", "grad_sq", "fp16", "expected"), [
    (float("nan"), 1.0, False, "nonfinite_loss"),
    (2.0, float("inf"), False, "nonfinite_grad"),
    (2.0, float("inf"), True, None),  # an fp16 overflow: the loss scaler skips that step itself
    (2.0, 1.0, False, None),
    (50.0, 1.0, False, "spike"),
])
def test_the_triggers(loss, grad_sq, fp16, expected):
    guard = RollbackGuard("/nonexistent", max_rollbacks=1, snapshot_interval=1, snapshot_device="cpu", lr_scale=1.0,
                          lr_scale_batches=0, save_restored=False, streams=["default"], fp16=fp16,
                          spike={"window": 10, "min_history": 3, "z_threshold": 6.0, "ratio_threshold": 1.5})
    guard.history.extend([2.0, 2.1, 1.9])
    assert guard._trigger(loss, grad_sq) == expected
