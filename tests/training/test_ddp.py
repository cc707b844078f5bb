"""`composer -n 2 train.py` on CPU (gloo DDP): two processes split each global batch."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from composer.utils import reproducibility

from llmfoundry_lite.callbacks.metrics_file import read_metrics
from llmfoundry_lite.config import load_config
from llmfoundry_lite.models.composer_model import ComposerDecoder
from llmfoundry_lite.objectives import build_objective
from llmfoundry_lite.tokenizer.io import load_tokenizer
from llmfoundry_lite.training.config import TrainConfig
from llmfoundry_lite.training.data import build_dataloader
from tests.training.shards import ROOT, TOKENIZER_DIR, tiny_overrides


def first_step_loss_single_process(cfg: TrainConfig) -> float:
    """Loss of the freshly initialised model on the first global batch, in this process."""
    reproducibility.seed_all(cfg.seed)
    model = ComposerDecoder(cfg.model)
    lc = cfg.train_loader
    objective = build_objective(cfg.objective, load_tokenizer(TOKENIZER_DIR), cfg.model.max_seq_len)
    dl = build_dataloader(lc.local, lc.split, objective, cfg.global_train_batch_size, shuffle=lc.shuffle,
                          shuffle_seed=lc.shuffle_seed, shuffle_algo=lc.shuffle_algo,
                          num_canonical_nodes=lc.num_canonical_nodes, num_workers=0, drop_last=True)
    batch = next(iter(dl))
    with torch.no_grad():
        return model.loss(model(batch), batch).item()


@pytest.mark.slow
def test_composer_launcher_two_cpu_processes(tiny_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    save = tmp_path / "run"
    # Next-token only: every token carries a label, so the mean of the two ranks' losses is the
    # full-batch loss (with UL2/FIM masking, per-rank label counts differ).
    overrides = tiny_overrides(shards, save, max_duration="2ba", eval_interval="2ba", save_interval="2ba",
                               **{"objective.weights": "{next_token: 1.0}"})
    composer = Path(sys.executable).parent / "composer"
    proc = subprocess.run([str(composer), "-n", "2", "train.py", "yamls/code-tiny.yaml", *overrides],
                          cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    losses = read_metrics(save / "metrics.jsonl", "loss/train/total")
    assert list(losses) == [0, 1]
    # Each rank saw half of the same global batch; the all-reduced loss equals the full-batch loss.
    reference = first_step_loss_single_process(load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", overrides))
    assert losses[0] == pytest.approx(reference, rel=1e-5)
    assert (save / "ep0-ba2-rank0.pt").is_file()
