"""Small data never hangs: an epoch that holds no full batch fails at start, naming the rows and the batch.

Before, the loader dropped the partial batch, every epoch was empty and Composer looped over empty
epochs at step 0 forever without a message; the runs here are subprocesses with a timeout so that
failure shows as a failed test, not a stuck test run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from streaming import StreamingDataset

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.hf_export import export_hf
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.tokenizer import load_tokenizer
from tests.training.shards import ROOT, TOKENIZER_DIR, tiny_overrides, write_shards

TIMEOUT_S = 300  # a refusal takes ~80 s here (start-up on a loaded 2-core machine); a hang never ends


def run_train(args: list[str]) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` on one process; a run still going after TIMEOUT_S fails the test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")[-2000:]
        pytest.fail(f"the run neither trained nor failed within {TIMEOUT_S} s (empty epochs?): {out!r}")


def test_pretraining_on_fewer_samples_than_one_global_batch_fails_at_start(tmp_path):
    shards = write_shards(tmp_path / "shards", sources=["colorsys.py"], n_val=4)
    rows = StreamingDataset(local=str(shards / "train"), batch_size=1).num_samples
    batch = 2 * rows  # a whole global batch needs twice the data there is
    proc = run_train(["yamls/code-tiny.yaml", *tiny_overrides(shards, tmp_path / "run", global_train_batch_size=str(batch),
                                                               max_duration="2ba")])
    assert proc.returncode != 0
    assert (f"train split: {rows} samples per epoch, i.e. {rows} per rank over 1 rank(s): fewer than one batch of "
            f"{batch} per rank") in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr  # one line naming the fix, not a stack


def test_lora_on_32_short_rows_packed_below_one_batch_fails_at_start(tmp_path):
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    torch.manual_seed(0)
    base = export_hf(Transformer(ModelConfig(d_model=32, n_layers=1, n_heads=4, vocab_size=tokenizer.get_vocab_size(),
                                             max_seq_len=512)), tokenizer, tmp_path / "base")
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Return {i}.", "response": f"return {i}\n"}) + "\n"
                            for i in range(32)))
    proc = run_train(["yamls/finetune/code-tiny-lora.yaml", f"base={base}", f"train_loader.data={data}",
                      "eval_loader=null", f"save_folder={tmp_path / 'run'}", "global_train_batch_size=8",
                      "train_loader.packing=true", "loggers.wandb=null", "max_duration=2ep"])
    assert proc.returncode != 0
    out = proc.stderr + proc.stdout
    assert "train_loader: 32 examples in " in out and "fewer than one batch of 8 per rank" in out, out[-3000:]
    assert "train_loader.packing: false" in out  # the way out names the key
