"""Tiny MDS shards for tests: real source text, the committed test tokenizer, packed with EOS."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
from streaming import MDSWriter
from tokenizers import Tokenizer

from llmfoundry_lite.shards.manifest import write_shards_manifest
from llmfoundry_lite.tokenizer.io import tokenizer_sha256

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER_DIR = ROOT / "tests" / "assets" / "tokenizer"
SOURCES = ["json/decoder.py", "json/encoder.py", "textwrap.py", "colorsys.py", "bisect.py", "heapq.py"]


def packed_samples(seq_len: int, sources: list[str] = SOURCES) -> np.ndarray:
    """(N, seq_len) int32: stdlib files tokenized, each followed by EOS (id 0), cut into rows."""
    tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    stream: list[int] = []
    for name in sources:
        stream += tok.encode((stdlib / name).read_text()).ids + [0]
    n = len(stream) // seq_len
    return np.asarray(stream[: n * seq_len], dtype=np.int32).reshape(n, seq_len)


def write_shards(out: Path, seq_len: int = 64, n_val: int = 16, sources: list[str] = SOURCES) -> Path:
    """``out/train`` and ``out/val`` MDS dirs with a ``tokens`` ndarray:int32 column, and the
    ``manifest.json`` training checks (tokenizer hash, vocab size, sequence length)."""
    rows = packed_samples(seq_len, sources)
    for split, part in (("val", rows[:n_val]), ("train", rows[n_val:])):
        with MDSWriter(out=str(out / split), columns={"tokens": "ndarray:int32"}, size_limit=1 << 16) as w:
            for row in part:
                w.write({"tokens": row})
    write_shards_manifest(out, {
        "tokenizer_sha256": tokenizer_sha256(TOKENIZER_DIR), "tokenizer_dir": str(TOKENIZER_DIR),
        "vocab_size": Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json")).get_vocab_size(),
        "max_seq_len": seq_len, "eos_id": 0, "pad_id": 1,
        "counts": {"train": len(rows) - n_val, "val": n_val},
    })
    return out


def tiny_overrides(shards: Path, save_folder: Path, **extra: str) -> list[str]:
    """Dotted overrides that make code-tiny train in seconds on the fixture shards."""
    base = {
        "model.d_model": "64", "model.n_layers": "2", "model.n_heads": "4", "model.vocab_size": "1024",
        "model.max_seq_len": "64", "tokenizer": str(TOKENIZER_DIR), "train_loader.local": str(shards),
        "global_train_batch_size": "4", "device_eval_batch_size": "4", "max_duration": "8ba",
        "eval_interval": "4ba", "eval_subset_num_batches": "2", "save_folder": str(save_folder),
        "save_interval": "2ba", "scheduler.t_warmup": "2ba", "loggers.wandb": "null",
        "loggers.console_log_interval": "1ba",
        "callbacks.numerical_health.interval": "2", "callbacks.speed_monitor.peak_flops": "1e11",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def launch_ranks(n: int, args: list[str], timeout: float = 400) -> subprocess.CompletedProcess:
    """``composer -n N <args>`` from the repo root on CPU (gloo over loopback); asserts success."""
    composer = Path(sys.executable).parent / "composer"
    # Loopback for gloo's full mesh: the default interface lookup can pick an address that
    # concurrent jobs on a shared CI machine make flaky.
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(composer), "-n", str(n), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def first_global_batch(cfg: Any) -> tuple[Any, dict]:
    """The freshly initialised model of ``cfg`` (seeded like train.py) and the run's first global
    batch, built in this process: the reference multi-rank and microbatched runs are checked against."""
    from composer.utils import reproducibility

    from llmfoundry_lite.models.composer_model import ComposerDecoder
    from llmfoundry_lite.objectives import build_objective
    from llmfoundry_lite.tokenizer.io import load_tokenizer
    from llmfoundry_lite.training.data import build_dataloader

    reproducibility.seed_all(cfg.seed)
    model = ComposerDecoder(cfg.model)
    lc = cfg.train_loader
    objective = build_objective(cfg.objective, load_tokenizer(TOKENIZER_DIR), cfg.model.max_seq_len)
    dl = build_dataloader(dataclasses.replace(lc, num_workers=0), objective, cfg.global_train_batch_size)
    return model, next(iter(dl))
