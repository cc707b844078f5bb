import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from llmfoundry_lite.cli.demo import _newer
from llmfoundry_lite.cli.demo_summary import format_summary


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_summary_reads_every_artifact(tmp_path):
    _write(tmp_path / "data/local_stack/manifest.json",
           {"files": 10, "bytes": 2_000_000, "languages": {"Python": {"files": 7, "bytes": 1_500_000}, "C": {"files": 3, "bytes": 500_000}}})
    _write(tmp_path / "data/filtered/stats.json",
           {"seen": 10, "kept": 7, "rejected": 3, "skipped": 0, "rejected_by_reason": {"parse_error": 1, "near_duplicate": 2},
            "pii": {"email": 4, "ip_address": 0, "key": 1}})
    kept = tmp_path / "data/filtered/kept"
    kept.mkdir(parents=True)
    pq.write_table(pa.table({"content": ["héllo\n", "x" * 94]}), kept / "part-00000.parquet")
    _write(tmp_path / "data/tokenizer/manifest.json", {"vocab_size": 640, "num_special": 256, "training_seconds": 1.25})
    _write(tmp_path / "data/shards/manifest.json",
           {"max_seq_len": 128, "splits": {"train": {"samples": 3, "tokens": 22, "docs": 1}, "val": {"samples": 1, "tokens": 9, "docs": 1}}})
    run = tmp_path / "runs/code-tiny"
    _write(run / "train_summary.json", {"tokens_trained": 4096, "batches": 4, "tokens_per_s": 1234.5,
                                        "final_train_loss": 6.0, "final_eval_loss": 5.5, "unigram_entropy": 6.875})
    _write(run / "humaneval.jsonl_summary.json", {"scores": {"pass@1": 0.25}, "n_samples": 8, "n_problems": 4,
                                                  "vote": {"pass@1(vote)": 0.5, "pass@n": 0.75, "problems_without_examples": 1}})
    _write(run / "humaneval_infill.jsonl_summary.json", {"exact_match": 0.5, "pass_rate": 0.75, "tasks": 12})
    _write(tmp_path / "data/instruct/stats.json", {"seen": 50, "kept": 20, "dropped_by_reason": {"no_return": 18, "too_short": 12}})
    _write(tmp_path / "runs/code-tiny-lora/train_summary.json",
           {"lora": {"r": 8}, "samples_trained": 40, "batches": 5, "heldout_response_loss_before": 6.25,
            "heldout_response_loss_after": 5.5})
    _write(tmp_path / "runs/code-tiny-lora/humaneval.jsonl_summary.json", {"scores": {"pass@1": 0.0125}, "n_problems": 80})
    text = format_summary(tmp_path, Path("runs/code-tiny"), {"train code-tiny": 120.0}, 150.0)
    assert "10 files, 2.0 MB, 2 languages (Python 1.5 MB, C 0.5 MB" in text
    assert "seen 10 = kept 7 + rejected 3 + skipped 0" in text and "near_duplicate 2, parse_error 1" in text
    assert "3.45 chars/token" in text  # (6 + 94) chars / (31 tokens - 2 EOS)
    assert "ratio 0.800" in text and "pass@1 0.2500" in text and "exact match 0.5000" in text
    assert "docstring examples 0.5000 (pass@n 0.7500; 1 problems without examples)" in text
    assert "kept 20 pairs (top drops: no_return 18, too_short 12)" in text
    assert "LoRA r=8, 40 samples in 5 batches; held-out response loss 6.250 -> 5.500" in text
    assert "tuned model's humaneval pass@1 0.0125 (greedy, 80 problems)" in text
    assert "checkpoints              runs/code-tiny" in text and "2.5 min this run (train code-tiny 2.0 min)" in text


def test_summary_names_missing_artifacts(tmp_path):
    text = format_summary(tmp_path, Path("runs/x"), {}, 0.0)
    assert "corpus: missing" in text and "training: missing" in text and "humaneval: missing" in text
    assert "instructions: missing" in text and "fine-tuning: missing" in text


def test_later_stage_is_stale_when_model_retrained(tmp_path):
    trained, exported = tmp_path / "train_summary.json", tmp_path / "sample.txt"
    assert not _newer(exported, trained)()
    trained.write_text("{}")
    exported.write_text("x")
    assert _newer(exported, trained)()
    later = time.time() + 10
    os.utime(trained, (later, later))
    assert not _newer(exported, trained)()
