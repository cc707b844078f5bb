"""LoRA fine-tuning, ours vs Hugging Face ``transformers.Trainer`` + ``peft``, on the same base, data and settings.

``python benchmarks/bench_finetune.py [--data FILE] [--steps N] [--batch B] [--seq L]``

One base (a seeded code-tiny-sized decoder exported as a Llama directory, the test tokenizer
with its chat tokens), one instruction file (default: prompt/response pairs drawn from the running
interpreter's stdlib by ``data_prep/synthesize_instruct.py``), the same rows in the same order (no
packing: the peer cannot isolate packed examples without flash-attention), LoRA rank ``r`` on the
attention projections, AdamW with a constant learning rate, clipping at 1.0, fp32 on CPU. Ours
trains through ``composer train.py``'s fine-tuning path; the peer through ``Trainer.train()``.
Printed: wall time, tokens/s (non-padding tokens of the rows trained) and the mean training loss
of the last 5 steps for each, then ``ours vs peer: tokens/s R.RRx; final loss D.D%``.

Our LoRA wraps the fused ``qkv_proj`` (one adapter pair for q, k and v together) where the peer
wraps ``q_proj``, ``k_proj`` and ``v_proj`` separately: the same rank, a different parametrisation,
so the losses are compared, not required equal.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "tests" / "assets" / "tokenizer"


def make_base(out: Path, seq: int) -> Path:
    """A seeded code-tiny-shaped decoder over the test tokenizer, written as an HF Llama directory."""
    from llmfoundry_lite.models.config import ModelConfig
    from llmfoundry_lite.models.hf_export import export_hf
    from llmfoundry_lite.models.transformer import Transformer
    from llmfoundry_lite.tokenizer.io import load_tokenizer

    torch.manual_seed(0)
    model = Transformer(ModelConfig(d_model=256, n_layers=4, n_heads=4, vocab_size=1024, max_seq_len=seq))
    return export_hf(model, load_tokenizer(TOKENIZER), out)


def make_data(out: Path) -> Path:
    """Instruction pairs from a few stdlib modules (the synthesis command, as users run it)."""
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    inputs = [str(stdlib / name) for name in ("json", "email", "urllib", "logging", "asyncio", "importlib")]
    subprocess.run([sys.executable, "data_prep/synthesize_instruct.py", "--input", *inputs, "--output", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    return out / "instruct.jsonl"


def rows(data: Path, seq: int) -> list[dict]:
    from llmfoundry_lite.finetune.data import FinetuneDataConfig, FinetuneDataset
    from llmfoundry_lite.tokenizer.io import load_tokenizer

    dataset = FinetuneDataset(FinetuneDataConfig(data=str(data), max_seq_len=seq, packing=False), load_tokenizer(TOKENIZER))
    return [dataset[i] for i in range(len(dataset))]


def run_ours(base: Path, data: Path, save: Path, args: argparse.Namespace) -> tuple[float, list[float]]:
    from llmfoundry_lite.callbacks.metrics_file import read_metrics
    from llmfoundry_lite.config import load_config
    from llmfoundry_lite.finetune.config import FinetuneConfig
    from llmfoundry_lite.finetune.trainer import build_finetune_trainer

    cfg = load_config(FinetuneConfig, None, [
        f"base={base}", f"train_loader={{data: {data}, max_seq_len: {args.seq}, packing: false, shuffle: false}}",
        f"lora={{r: {args.r}, alpha: {2 * args.r}, dropout: 0.0, target_modules: [qkv_proj, o_proj]}}",
        f"optimizer={{name: decoupled_adamw, lr: {args.lr}, betas: [0.9, 0.999], weight_decay: 0.0}}",
        "scheduler={name: constant_with_warmup, t_warmup: 0ba}", f"global_train_batch_size={args.batch}",
        f"max_duration={args.steps}ba", f"save_folder={save}", "save_interval=100000ba", "autoresume=false",
        "precision=fp32", "loggers.wandb=null", "loggers.console_log_interval=1000ba", "callbacks.speed_monitor=null",
        "callbacks.numerical_health=null", "callbacks.loss_spike=null", "eval_interval=100000ba"])
    trainer = build_finetune_trainer(cfg)
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    trainer.close()
    losses = read_metrics(save / "metrics.jsonl", "loss/train/total")
    return seconds, [losses[k] for k in sorted(losses)]


def run_peer(base: Path, data_rows: list[dict], save: Path, args: argparse.Namespace) -> tuple[float, list[float]]:
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import SequentialSampler
    from transformers import LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    model = get_peft_model(LlamaForCausalLM.from_pretrained(str(base), dtype=torch.float32),
                           LoraConfig(r=args.r, lora_alpha=2 * args.r, lora_dropout=0.0,
                                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    examples = [{"input_ids": torch.as_tensor(r["input_ids"]), "labels": torch.as_tensor(r["labels"]),
                 "attention_mask": torch.as_tensor(r["segment_ids"] != 0, dtype=torch.int64)} for r in data_rows]
    losses: list[float] = []

    class Losses(TrainerCallback):
        def on_log(self, _args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    class InOrder(Trainer):  # the same rows in the same order as ours
        def _get_train_sampler(self, *a, **kw):
            return SequentialSampler(self.train_dataset)

    training_args = TrainingArguments(
        output_dir=str(save), per_device_train_batch_size=args.batch, max_steps=args.steps, learning_rate=args.lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.999,
        max_grad_norm=1.0, logging_steps=1, report_to=[], use_cpu=True, save_strategy="no", seed=17,
        dataloader_drop_last=True, disable_tqdm=True)
    trainer = InOrder(model=model, args=training_args, train_dataset=examples, callbacks=[Losses()])
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start, losses


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="instruction JSONL (default: pairs synthesized from the stdlib)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = make_base(work / "base", args.seq)
        data = Path(args.data) if args.data else make_data(work / "instruct")
        data_rows = rows(data, args.seq)
        used = data_rows * (1 + args.steps * args.batch // max(len(data_rows), 1))
        tokens = sum(int((r["segment_ids"] != 0).sum()) for r in used[: args.steps * args.batch])
        ours_s, ours_loss = run_ours(base, data, work / "ours", args)
        peer_s, peer_loss = run_peer(base, data_rows, work / "peer", args)
    print(f"base: d_model 256, 4 layers, vocab 1024; {len(data_rows)} rows of {args.seq} tokens from {data.name}; "
          f"{args.steps} steps x {args.batch} rows; LoRA r={args.r}, lr {args.lr}, fp32 CPU")
    print(f"{'':22}{'wall s':>8}{'tokens/s':>10}{'loss@last5':>12}")
    for name, seconds, losses in (("ours (Composer)", ours_s, ours_loss), ("peer (HF Trainer+peft)", peer_s, peer_loss)):
        print(f"{name:22}{seconds:8.2f}{tokens / seconds:10,.0f}{sum(losses[-5:]) / 5:12.4f}")
    ours_final, peer_final = sum(ours_loss[-5:]) / 5, sum(peer_loss[-5:]) / 5
    print(f"ours vs peer: tokens/s {peer_s / ours_s:.2f}x; final loss {100 * (ours_final - peer_final) / peer_final:+.1f}%")


if __name__ == "__main__":
    main(sys.argv[1:])
