"""CPU end to end: real commands on a tiny corpus — data prep → a few training batches → export → HumanEval."""

import json
import math
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["stdlib"])
PACKAGES = ["email", "json", "asyncio", "xml", "importlib", "concurrent", "http", "urllib", "logging", "encodings",
            "unittest", "multiprocessing", "sqlite3", "ctypes", "wsgiref", "zoneinfo", "collections", "tomllib"]


def _run(*args: str) -> str:
    env = {"WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    proc = subprocess.run([*args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"{args[:3]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_source_to_pass_at_k(tmp_path):
    py = sys.executable
    corpus, filtered, tok, shards, run = (tmp_path / n for n in ("corpus", "filtered", "tok", "shards", "run"))
    roots = ",".join(str(STDLIB / p) for p in PACKAGES)
    _run(py, "data_prep/shard_stack.py", "yamls/data/local.yaml", f"corpus.output={corpus}",
         f"corpus.roots=[{roots}]", "corpus.max_total_bytes=3000000", f"filter.output={filtered}", "filter.workers=1",
         f"tokenizer.output={tok}", "tokenizer.vocab_size=640", "tokenizer.sample_bytes=600000",
         f"shards.output={shards}", "shards.max_seq_len=128", "shards.val_fraction=0.1", "shards.workers=1")
    corpus_manifest = json.loads((corpus / "manifest.json").read_text())
    assert corpus_manifest["files"] >= 200  # a few hundred real files
    stats = json.loads((filtered / "stats.json").read_text())
    assert stats["kept"] + stats["rejected"] + stats["skipped"] == stats["seen"] == corpus_manifest["files"]
    shard_manifest = json.loads((shards / "manifest.json").read_text())
    assert shard_manifest["vocab_size"] == 640 and shard_manifest["splits"]["val"]["samples"] > 0

    _run(py, "train.py", "yamls/code-tiny.yaml", "model.d_model=64", "model.n_layers=2", "model.n_heads=2",
         "model.vocab_size=640", "model.max_seq_len=128", f"tokenizer={tok}", f"train_loader.local={shards}",
         "max_duration=4ba", "eval_interval=4ba", "save_interval=4ba", f"save_folder={run}", "loggers.wandb=null")
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["batches"] == 4 and summary["positions_processed"] == 4 * 8 * 128
    # padding (the last sample of each shard unit, UL2's unused tail) is not counted as trained tokens
    assert 0.5 * 4 * 8 * 128 < summary["tokens_trained"] <= summary["positions_processed"]
    assert math.isfinite(summary["final_eval_loss"]) and summary["final_eval_loss"] < math.log(640) + 1
    assert (run / "loss_curve.png").stat().st_size > 0

    out = _run(py, "scripts/export_hf.py", str(run), "--output", str(run / "hf"), "--max-new-tokens", "8")
    assert "reloaded with transformers" in out and (run / "hf" / "sample_generation.txt").is_file()

    samples = run / "he.jsonl"
    _run(py, "eval/humaneval.py", "--model", str(run / "hf"), "--limit", "2", "--n-samples", "2", "--k", "1,2",
         "--max-new-tokens", "16", "--temperature", "0.8", "--workers", "2", "--output", str(samples))
    results = [json.loads(line) for line in Path(f"{samples}_results.jsonl").read_text().splitlines()]
    assert len(results) == 4 and {r["task_id"] for r in results} == {"HumanEval/0", "HumanEval/1"}
    scores = json.loads(Path(f"{samples}_summary.json").read_text())["scores"]
    assert set(scores) == {"pass@1", "pass@2"} and all(0.0 <= v <= 1.0 for v in scores.values())
