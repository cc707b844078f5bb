"""Two launchers, two "nodes": `composer --world_size 4 --node_rank {0,1} -n 2` started from two working
directories, each with its own copy of the shards, so every relative path means a different directory per
node, as on machines with their own disks. With an absolute shared save_folder the run trains, survives
SIGKILL of both launchers and resumes to the same losses; with the presets' relative save_folder every rank
fails within seconds, naming save_folder and the fix, before anything is built."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from llmfoundry_lite.callbacks.metrics_file import read_metrics
from llmfoundry_lite.models.checkpoint_io import iter_model_state, locate_checkpoint
from llmfoundry_lite.training.shared_fs import PROBE_PREFIX, object_store_backend
from tests.training.shards import ROOT, tiny_overrides

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bwrap for per-node /dev/shm")
LOSS = "loss/train/total"
STEPS = 10  # checkpoints every 2 batches; long enough that the victim cannot finish between poll and kill
# Sharded checkpoints: every rank writes its own file into save_folder, the layout a node-local disk splits.
FSDP = ["fsdp_config.sharding_strategy=FULL_SHARD", "fsdp_config.state_dict_type=sharded"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_nodes(tmp: Path, shards: Path, name: str) -> list[Path]:
    """Two working directories, each with its own ``data/shards`` (what each node's disk holds)."""
    nodes = [tmp / f"{name}-node{i}" for i in range(2)]
    for node in nodes:
        shutil.copytree(shards, node / "data" / "shards")
    return nodes


@pytest.fixture
def started():
    """Every launcher a test starts; those still running when it ends (a failed assertion) are killed."""
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def launch(nodes: list[Path], save_folder: str, log_dir: Path, tag: str,
           started: list[subprocess.Popen]) -> list[subprocess.Popen]:
    """One composer launcher per node (its own process group), 2 ranks each, world size 4.

    Each node also gets its own ``/dev/shm`` (bwrap) and temp directory (``TMPDIR``), as separate
    machines have: streaming's local leaders would otherwise both claim the first free shared-memory
    prefix on this one host and lock each other out, which no real multi-node run meets."""
    composer = Path(sys.executable).parent / "composer"
    private_shm = ["bwrap", "--dev-bind", "/", "/", "--tmpfs", "/dev/shm", "--die-with-parent", "--"]
    args = [str(ROOT / "train.py"), str(ROOT / "yamls" / "code-tiny.yaml"),
            *tiny_overrides(Path("data/shards"), save_folder, max_duration=f"{STEPS}ba", eval_interval=f"{STEPS}ba"),
            *FSDP]
    port = free_port()
    procs = []
    for rank, node in enumerate(nodes):
        (node / "tmp").mkdir(exist_ok=True)
        env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "TMPDIR": str(node / "tmp")}
        cmd = [*private_shm, str(composer), "--world_size", "4", "--node_rank", str(rank), "--master_addr", "127.0.0.1",
               "--master_port", str(port), "-n", "2", *args]
        log = (log_dir / f"{tag}-node{rank}.log").open("w")
        procs.append(subprocess.Popen(cmd, cwd=node, stdout=log, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True))
    started.extend(procs)
    return procs


def wait_all(procs: list[subprocess.Popen], timeout: float = 500) -> list[int]:
    return [p.wait(timeout=timeout) for p in procs]


def log_text(log_dir: Path, tag: str) -> str:
    return "\n".join((log_dir / f"{tag}-node{i}.log").read_text() for i in range(2))


@pytest.mark.slow
def test_two_nodes_shared_save_folder_survive_sigkill_and_resume_exactly(tiny_shards, tmp_path, started):
    ref_save, run_save = tmp_path / "shared" / "ref", tmp_path / "shared" / "run"
    ref = launch(make_nodes(tmp_path, tiny_shards, "ref"), str(ref_save), tmp_path, "ref", started)
    run_nodes = make_nodes(tmp_path, tiny_shards, "run")
    victim = launch(run_nodes, str(run_save), tmp_path, "killed", started)
    metrics = run_save / "metrics.jsonl"
    deadline = time.monotonic() + 400
    while not (metrics.exists() and max(read_metrics(metrics, LOSS), default=-1) >= 3):  # ba2 is saved
        assert all(p.poll() is None for p in victim) and time.monotonic() < deadline, log_text(tmp_path, "killed")
        time.sleep(0.05)
    for p in victim:  # both nodes die at once: each launcher with its ranks
        os.killpg(p.pid, signal.SIGKILL)
    wait_all(victim)
    assert max(read_metrics(metrics, LOSS)) < STEPS - 1, "the victim finished before the kill"
    resumed_from = int((run_save / "latest-rank0.pt").resolve().name.split("-ba")[1])
    lines_before = len(metrics.read_text().splitlines())

    resumed = launch(run_nodes, str(run_save), tmp_path, "resumed", started)
    assert wait_all(resumed) == [0, 0], log_text(tmp_path, "resumed")[-4000:]
    assert wait_all(ref) == [0, 0], log_text(tmp_path, "ref")[-4000:]
    assert f"save_folder: {run_save} (one directory, seen by all 4 ranks)" in log_text(tmp_path, "resumed")

    new_lines = metrics.read_text().splitlines()[lines_before:]
    new_steps = [json.loads(line)["step"] for line in new_lines if LOSS in line]
    assert resumed_from >= 2 and new_steps == list(range(resumed_from, STEPS))  # resumed, did not restart
    ref_losses, run_losses = read_metrics(ref_save / "metrics.jsonl", LOSS), read_metrics(metrics, LOSS)
    assert list(ref_losses) == list(range(STEPS))
    assert run_losses == ref_losses  # exact, every step
    ref_ckpt, run_ckpt = locate_checkpoint(ref_save), locate_checkpoint(run_save)
    assert run_ckpt.sharded and run_ckpt.path.name == ref_ckpt.path.name == f"ep0-ba{STEPS}"
    assert len(list(run_ckpt.path.glob("*.distcp"))) == 4  # all four ranks' shards in the one folder
    run_weights = dict(iter_model_state(run_ckpt))
    for name, value in iter_model_state(ref_ckpt):
        assert torch.equal(value, run_weights[name]), name
    assert not list(run_save.glob(f"{PROBE_PREFIX}*"))  # the probe cleans up after itself
    for node in run_nodes:  # nothing went to the nodes' own disks
        assert not (node / "runs").exists()


@pytest.mark.slow
def test_two_nodes_node_local_save_folder_fails_fast_naming_it(tiny_shards, tmp_path, started):
    nodes = make_nodes(tmp_path, tiny_shards, "local")
    start = time.monotonic()
    procs = launch(nodes, "runs/code-tiny", tmp_path, "local", started)  # the preset's relative save_folder
    codes = wait_all(procs, timeout=300)
    elapsed = time.monotonic() - start
    out = log_text(tmp_path, "local")
    assert codes[0] != 0 and codes[1] != 0, out[-4000:]
    assert "error: save_folder='runs/code-tiny' is not one shared directory: global ranks [2, 3] (node(s) [1])" in out
    assert "absolute path on a filesystem every node mounts" in out and "s3://" in out
    assert "each launcher resolves it against its own working directory" in out
    assert "parallelism:" not in out  # failed before building data, model or trainer
    # Nothing trained or saved on either node: rank 0's folder holds no checkpoint, no metrics, no probe.
    assert not (nodes[1] / "runs").exists()
    assert [p.name for p in (nodes[0] / "runs" / "code-tiny").iterdir()] == []
    print(f"two launchers failed {elapsed:.1f}s after start")  # the time is start-up; the probe waits 5s


def test_object_store_uris_skip_the_probe_and_unknown_schemes_are_refused():
    assert object_store_backend("s3://bucket/runs/x") == "s3"
    assert object_store_backend("oci://bucket/runs/x") == "oci"
    assert object_store_backend("/shared/runs/x") is None and object_store_backend("runs/x") is None
    with pytest.raises(ValueError, match="save_folder='hdfs://nn/runs/x'.*s3://"):
        object_store_backend("hdfs://nn/runs/x")
