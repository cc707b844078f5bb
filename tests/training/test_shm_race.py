"""Jobs starting together on one node: streaming's shared-memory prefix is registered one job at a time."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Each process (a one-rank job, its own process group) waits for a common go, then builds the training dataset on its own shard copy.
BUILD = """
import sys, time
from pathlib import Path
import torch.distributed as dist
from llmfoundry_lite.objectives import ObjectiveConfig, build_objective
from llmfoundry_lite.tokenizer import load_tokenizer
from llmfoundry_lite.training.data import ObjectiveDataset
objective = build_objective(ObjectiveConfig(), load_tokenizer(sys.argv[2]), 64)
# A process group, as train.py has: streaming then barriers between finding a free prefix and taking it.
dist.init_process_group("gloo", init_method=f"file://{sys.argv[3]}.store{sys.argv[4]}", rank=0, world_size=1)
print("ready", flush=True)
go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
ds = ObjectiveDataset(objective=objective, local=sys.argv[1], shuffle=False, batch_size=1)
print(ds._shm_prefix_int, flush=True)
time.sleep(1)  # keep the prefix registered while the others register theirs
"""


def test_datasets_of_jobs_started_at_once_get_distinct_prefixes(tiny_shards, tmp_path):
    n = 4
    copies = []
    for i in range(n):
        shutil.copytree(tiny_shards / "train", tmp_path / f"s{i}")
        copies.append(tmp_path / f"s{i}")
    go = tmp_path / "go"
    tokenizer = ROOT / "tests" / "assets" / "tokenizer"
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, str(c), str(tokenizer), str(go), str(i)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i, c in enumerate(copies)]
    for p in procs:  # every interpreter has imported torch and streaming: then all start at once
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    errors = [err.strip().splitlines()[-1] for (_, err), p in zip(results, procs, strict=True) if p.returncode]
    assert not errors, errors  # without the lock: FileExistsError: [Errno 17] File exists: '/000001_locals'
    prefixes = [int(out.split()[0]) for out, _ in results]
    assert len(set(prefixes)) == n, prefixes
