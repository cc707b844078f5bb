"""A run SIGKILLed mid-way and restarted with the same command (autoresume) must reproduce the
uninterrupted run exactly: every per-step loss and every final weight."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from llmfoundry_lite.callbacks.metrics_file import read_metrics
from llmfoundry_lite.models.load import load_for_inference
from llmfoundry_lite.training.replay import read_spikes, replay_spike
from tests.training.shards import ROOT, tiny_overrides

LOSS = "loss/train/total"


# Thresholds so low that (nearly) every step is flagged: the replay below needs real records.
EVERY_STEP_SPIKES = ["callbacks.loss_spike.min_history=1", "callbacks.loss_spike.z_threshold=-100",
                     "callbacks.loss_spike.ratio_threshold=0"]


STEPS = 16  # long enough that the victim cannot finish between our poll and the kill


def _command(shards: Path, save: Path) -> list[str]:
    return [sys.executable, "train.py", "yamls/code-tiny.yaml", *tiny_overrides(shards, save, max_duration=f"{STEPS}ba"),
            *EVERY_STEP_SPIKES]


def _start(shards: Path, save: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(_command(shards, save), cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def _wait_for_step(proc: subprocess.Popen, metrics: Path, step: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists() and max(read_metrics(metrics, LOSS), default=-1) >= step:
            return
        assert proc.poll() is None, f"training exited early with {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached in {timeout}s")


def _final_weights(save: Path) -> dict[str, torch.Tensor]:
    state = torch.load(save / "latest-rank0.pt", map_location="cpu", weights_only=False)
    return state["state"]["model"]


def test_sigkill_then_autoresume_matches_uninterrupted_run(tiny_shards, tmp_path):
    # Separate shard copies: streaming refuses two live processes on one local directory.
    shards_a, shards_b = tmp_path / "shards_a", tmp_path / "shards_b"
    shutil.copytree(tiny_shards, shards_a)
    shutil.copytree(tiny_shards, shards_b)
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    ref = _start(shards_a, ref_dir, tmp_path / "ref.log")
    victim = _start(shards_b, run_dir, tmp_path / "killed.log")
    _wait_for_step(victim, run_dir / "metrics.jsonl", step=3)  # checkpoints every 2 batches
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert max(read_metrics(run_dir / "metrics.jsonl", LOSS)) < STEPS - 1, "victim finished before the kill"
    lines_before = len((run_dir / "metrics.jsonl").read_text().splitlines())
    # A kill during a save leaves a newer, unfinished file that latest-rank0.pt does not point to.
    done = int((run_dir / "latest-rank0.pt").resolve().name.split("-ba")[1].split("-")[0])
    partial = run_dir / f"ep0-ba{done + 2}-rank0.pt"
    if not partial.exists():
        partial.write_bytes(b"unfinished checkpoint")
    resumed = _start(shards_b, run_dir, tmp_path / "resumed.log")
    assert resumed.wait(timeout=300) == 0, (tmp_path / "resumed.log").read_text()[-3000:]
    assert ref.wait(timeout=300) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    # The restart resumed from the last finished checkpoint instead of starting over.
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    resumed_steps = [json.loads(line)["step"] for line in lines[lines_before:] if LOSS in line]
    assert done >= 2 and resumed_steps == list(range(done, STEPS))
    assert sum('"step": 0, "loss/train/total"' in line for line in lines) == 1

    ref_losses = read_metrics(ref_dir / "metrics.jsonl", LOSS)
    run_losses = read_metrics(run_dir / "metrics.jsonl", LOSS)
    assert list(ref_losses) == list(range(STEPS))
    assert run_losses == ref_losses  # exact float equality, every step
    assert ref_losses[STEPS - 1] < ref_losses[0]

    ref_w, run_w = _final_weights(ref_dir), _final_weights(run_dir)
    assert ref_w.keys() == run_w.keys()
    for name in ref_w:
        assert torch.equal(ref_w[name], run_w[name]), name

    # The checkpoint is self-describing: load_for_inference rebuilds model + tokenizer from it.
    model, tokenizer = load_for_inference(str(run_dir))
    assert tokenizer.get_vocab_size() == 1024
    assert torch.equal(model.embed.weight, run_w["model.embed.weight"])

    # A recorded spike replays exactly: same samples, same objective output, weights from ba4.
    spikes = read_spikes(ref_dir)
    steps = [r["step"] for r in spikes]
    assert 4 in steps and all(len(r["sample_indices"]) == 4 for r in spikes)
    replay = replay_spike(ref_dir, spike=steps.index(4))
    assert replay["checkpoint"].endswith("ep0-ba4-rank0.pt")
    per_sample = list(replay["per_sample_loss"].values())
    assert len(per_sample) == 4
    assert sum(per_sample) / 4 == pytest.approx(ref_losses[4], rel=1e-5)
