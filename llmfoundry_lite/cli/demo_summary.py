"""The one summary ``make demo`` prints, read from the artifacts each stage wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _corpus(root: Path) -> list[str]:
    m = _load(root / "data/local_stack/manifest.json")
    if m is None:
        return ["corpus: missing (data/local_stack/manifest.json)"]
    top = ", ".join(f"{lang} {s['bytes'] / 1e6:.1f} MB" for lang, s in list(m["languages"].items())[:5])
    return [f"corpus        {m['files']:,} files, {m['bytes'] / 1e6:.1f} MB, {len(m['languages'])} languages ({top}, …)"]


def _filter(root: Path) -> list[str]:
    s = _load(root / "data/filtered/stats.json")
    if s is None:
        return ["filter: missing (data/filtered/stats.json)"]
    lines = [f"filter        seen {s['seen']:,} = kept {s['kept']:,} + rejected {s['rejected']:,} + skipped {s['skipped']:,}"]
    reasons = sorted(s["rejected_by_reason"].items(), key=lambda kv: -kv[1])
    lines.append("  rejected by reason: " + ", ".join(f"{r} {n:,}" for r, n in reasons))
    if s.get("skipped_by_reason"):
        lines.append("  skipped by reason: " + ", ".join(f"{r} {n:,}" for r, n in s["skipped_by_reason"].items()))
    pii = s.get("pii", {})
    if pii:
        lines.append("  PII redacted: " + ", ".join(f"{k} {v:,}" for k, v in pii.items() if isinstance(v, int)))
    return lines


def _kept_chars(files: list[Path]) -> int:
    """Characters (code points) of every kept document: the numerator of chars/token."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return sum(pc.sum(pc.utf8_length(pq.read_table(f, columns=["content"])["content"])).as_py() or 0 for f in files)


def _vocab_and_shards(root: Path) -> list[str]:
    tok = _load(root / "data/tokenizer/manifest.json")
    shards = _load(root / "data/shards/manifest.json")
    if tok is None or shards is None:
        return ["vocabulary/shards: missing (data/tokenizer, data/shards)"]
    tokens = sum(sp["tokens"] for sp in shards["splits"].values())
    docs_tokens = tokens - sum(sp["docs"] for sp in shards["splits"].values())  # minus one EOS per document
    lines = [f"vocabulary    {tok['vocab_size']:,} tokens ({tok['num_special']} special), trained in {tok['training_seconds']:.1f} s"]
    kept = sorted((root / "data/filtered/kept").glob("*.parquet"))
    if kept:
        lines[0] += f"; {_kept_chars(kept) / docs_tokens:.2f} chars/token on the kept corpus"
    split_text = ", ".join(f"{name} {sp['samples']:,} samples / {sp['tokens']:,} tokens" for name, sp in shards["splits"].items())
    lines.append(f"shards        {split_text} (max_seq_len {shards['max_seq_len']})")
    return lines


def _training(run: Path) -> list[str]:
    t = _load(run / "train_summary.json")
    if t is None:
        return [f"training: missing ({run}/train_summary.json)"]
    return [
        f"training      {t['tokens_trained']:,} tokens in {t['batches']} batches, {t['tokens_per_s']:,.0f} tokens/s",
        f"  final train loss {t['final_train_loss']:.3f}, val loss {t['final_eval_loss']:.3f} nats/token vs unigram "
        f"baseline {t['unigram_entropy']:.3f} (ratio {t['final_eval_loss'] / t['unigram_entropy']:.3f})",
    ]


def _eval(run: Path) -> list[str]:
    he = _load(run / "humaneval.jsonl_summary.json")
    fim = _load(run / "humaneval_infill.jsonl_summary.json")
    lines = []
    if he is None:
        lines.append("humaneval: missing")
    else:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in he["scores"].items())
        lines.append(f"humaneval     {scores} ({he['n_samples']} samples over {he['n_problems']} problems)")
        if "vote" in he:
            v = he["vote"]
            lines.append(f"  voting      pass@1 of the sample chosen by agreement on the docstring examples {v['pass@1(vote)']:.4f}"
                         f" (pass@n {v['pass@n']:.4f}; {v['problems_without_examples']} problems without examples)")
    if fim is not None:
        lines.append(f"infilling     exact match {fim['exact_match']:.4f}, tests pass {fim['pass_rate']:.4f} "
                     f"({fim['tasks']} hidden lines)")
    return lines


def _finetune(root: Path) -> list[str]:
    synth = _load(root / "data/instruct/stats.json")
    ft = _load(root / "runs/code-tiny-lora/train_summary.json")
    lines = []
    if synth is None:
        lines.append("instructions: missing (data/instruct/stats.json)")
    else:
        reasons = sorted(synth["dropped_by_reason"].items(), key=lambda kv: -kv[1])[:4]
        lines.append(f"instructions  seen {synth['seen']:,} functions, kept {synth['kept']:,} pairs "
                     f"(top drops: {', '.join(f'{r} {n:,}' for r, n in reasons)})")
    if ft is None:
        lines.append("fine-tuning: missing (runs/code-tiny-lora/train_summary.json)")
    else:
        kind = f"LoRA r={ft['lora']['r']}" if ft.get("lora") else "full"
        before, after = ft["heldout_response_loss_before"], ft["heldout_response_loss_after"]
        change = f"{before:.3f} -> {after:.3f}" if before is not None else f"{after:.3f} (resumed run)"
        lines.append(f"fine-tuning   {kind}, {ft['samples_trained']:,} samples in {ft['batches']} batches; "
                     f"held-out response loss {change} nats/token")
    he = _load(root / "runs/code-tiny-lora/humaneval.jsonl_summary.json")
    if he is not None:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in he["scores"].items())
        lines.append(f"  tuned model's humaneval {scores} (greedy, {he['n_problems']} problems)")
    return lines


def format_summary(root: Path, run: Path, timings: dict[str, float], total_s: float) -> str:
    """Every headline number of the demo plus where each artifact lives."""
    rel, run = run, root / run
    gen = run / "hf" / "sample_generation.txt"
    lines = ["=" * 30 + " llmfoundry_lite demo summary " + "=" * 30]
    lines += _corpus(root) + _filter(root) + _vocab_and_shards(root) + _training(run) + _eval(run)
    lines += _finetune(root)
    if gen.is_file():
        lines.append("HF export     reloaded with transformers; sample completion:")
        lines += ["    " + line for line in gen.read_text().splitlines()[:8]]
    lines.append("artifacts")
    for label, path in [("corpus", "data/local_stack"), ("filtered + X-ray report", "data/filtered/report"),
                        ("tokenizer", "data/tokenizer"), ("shards", "data/shards"), ("checkpoints", str(rel)),
                        ("loss curve", str(rel / "loss_curve.png")), ("W&B offline run", str(rel / "wandb")),
                        ("HF export", str(rel / "hf")), ("HumanEval results", str(rel / "humaneval.jsonl_results.jsonl")),
                        ("instruction pairs", "data/instruct"), ("LoRA run", "runs/code-tiny-lora")]:
        lines.append(f"  {label:<24} {path}")
    ran = ", ".join(f"{name.split(':')[0].split(' (')[0]} {s / 60:.1f} min" for name, s in timings.items())
    lines.append(f"time          {total_s / 60:.1f} min this run" + (f" ({ran})" if ran else " (every stage reused)"))
    return "\n".join(lines)
