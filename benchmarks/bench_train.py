"""Training-step speed on this machine: our Composer step vs a bare PyTorch loop vs llm-foundry's MPT.

    .venv/bin/python benchmarks/bench_train.py [--d-model 256 --n-layers 4 --seq-len 512 --batch 2 --steps 4]
    .venv/bin/python benchmarks/bench_train.py --activation-health [--rounds 3]   # the monitor's cost only

The defaults are code-tiny's shape (d_model 256, 4 layers, vocab 8192, seq 512).

Columns, all measured in this run with the same threads, shapes and fp32:
  ours (Composer)  our ComposerDecoder in Composer's Trainer as train.py builds it (FusedDecoupledAdamW,
                   global-norm clipping, token-weighted accumulation)
  ours, compiled   the same with ``compile: true`` (Composer's compile_config → torch.compile)
  bare loop        the same Transformer in a hand-written loop (torch AdamW, clip_grad_norm_, the
                   same shifted-label cross-entropy as our lm_loss)
  MPT              llm-foundry 0.22's MPTForCausalLM built from MPTConfig (same d_model, layers,
                   heads, vocab, untied head, ALiBi, no biases, torch attention) in the same bare loop
  matmul peak      best fp32 (n×n)·(n×n) torch.mm rate: the "peak" for CPU MFU

FLOPs per token for every model: 6·N_matmul + 12·n_layers·d_model·seq (N_matmul = weights of all
nn.Linear layers; embedding lookups excluded). MPT runs in its own venv (llm-foundry pins
streaming<0.13 and transformers<4.52, so it can never share ours):

    .venv/bin/uv venv --python .venv/bin/python /tmp/llmf_bench/venv
    .venv/bin/uv pip install --python /tmp/llmf_bench/venv/bin/python llm-foundry==0.22.0 torch==2.7.0 'setuptools<81'

(or pass --mpt-python PATH). Without it the MPT column is skipped with the reason printed.
Steps after warm-up are timed one by one; rates come from the best step (the least disturbed by
other work on a shared machine), with the median printed beside it. Ours and the bare loop are
interleaved round by round so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_MPT_PYTHON = "/tmp/llmf_bench/venv/bin/python"


def matmul_params(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def flops_per_token(model: nn.Module, n_layers: int, d_model: int, seq: int) -> float:
    return 6.0 * matmul_params(model) + 12.0 * n_layers * d_model * seq


def bare_loop_step_times(model: nn.Module, batches: list[torch.Tensor], forward) -> list[float]:
    """Seconds per step of forward + shifted CE + backward + clip + AdamW step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    times = []
    for x in batches:
        t0 = time.perf_counter()
        logits = forward(model, x)
        # Shifted labels, logits as a view: the same math (and memory traffic) as our lm_loss.
        labels = F.pad(x[:, 1:], (0, 1), value=-100)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return times


def mpt_worker(args: argparse.Namespace) -> None:
    """Runs under llm-foundry's venv: prints one JSON line with MPT's step times."""
    from llmfoundry.models.mpt import MPTConfig, MPTForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = MPTConfig(
        d_model=args.d_model, n_heads=args.n_heads, n_layers=args.n_layers, expansion_ratio=4,
        max_seq_len=args.seq_len, vocab_size=args.vocab, learned_pos_emb=False, no_bias=True,
        tie_word_embeddings=False, attn_config={"attn_impl": "torch", "alibi": True}, init_device="cpu",
    )
    model = MPTForCausalLM(cfg)
    batches = [torch.randint(0, args.vocab, (args.batch, args.seq_len)) for _ in range(args.warmup + args.steps * args.rounds)]
    times = bare_loop_step_times(model, batches, lambda m, x: m(input_ids=x).logits)[args.warmup:]
    print(json.dumps({
        "times": times, "params": sum(p.numel() for p in model.parameters()),
        "flops_per_token": flops_per_token(model, args.n_layers, args.d_model, args.seq_len),
    }))


def composer_step_times(cfg, batches: list[dict[str, torch.Tensor]], compile_model: bool = False,
                        precision: str = "fp32", microbatch: int | None = None, callbacks: list | None = None) -> list[float]:
    """Per-batch seconds (BATCH_START → BATCH_END, CUDA synchronised) of our model in Composer's
    Trainer, built as train.py builds it; on the GPU when there is one (``gpu_check.py`` uses it).
    ``callbacks`` are added after the timer and the clip (the monitor under test)."""
    from composer import Trainer
    from composer.core import Callback
    from torch.utils.data import DataLoader

    from llmfoundry_lite.callbacks.grad_clip import GlobalGradClip
    from llmfoundry_lite.models.composer_model import ComposerDecoder
    from llmfoundry_lite.training.adamw import FusedDecoupledAdamW
    from llmfoundry_lite.training.parallel import token_data_spec

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    class Timer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def batch_start(self, state, logger) -> None:
            sync()
            self.t0 = time.perf_counter()

        def batch_end(self, state, logger) -> None:
            sync()
            self.times.append(time.perf_counter() - self.t0)

    rows = len(batches[0]["input_ids"])
    loader = DataLoader([{k: v[i] for k, v in b.items()} for b in batches for i in range(rows)], batch_size=rows)
    torch.manual_seed(0)
    model = ComposerDecoder(cfg)
    timer = Timer()
    trainer = Trainer(model=model, train_dataloader=token_data_spec(loader), max_duration=f"{len(batches)}ba",
                      optimizers=FusedDecoupledAdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95)),
                      callbacks=[timer, GlobalGradClip(1.0), *(callbacks or [])], progress_bar=False, log_to_console=False,
                      precision=precision, loggers=[], accumulate_train_batch_on_tokens=True,
                      device_train_microbatch_size=microbatch, compile_config={} if compile_model else None)
    trainer.fit()
    return timer.times


def next_token_batches(cfg, n: int, rows: int) -> list[dict[str, torch.Tensor]]:
    """``n`` batches of random tokens (no padding, one document per row): inputs = labels."""
    return [{"input_ids": (x := torch.randint(0, cfg.vocab_size, (rows, cfg.max_seq_len))), "labels": x}
            for _ in range(n)]


def run_mpt(args: argparse.Namespace) -> dict | str:
    """MPT's timings from its own venv, or the reason the column is skipped."""
    if not Path(args.mpt_python).exists():
        return f"no llm-foundry venv at {args.mpt_python} (see this script's docstring to create it)"
    cmd = [args.mpt_python, __file__, "--worker", "mpt"] + [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                                                           if k not in ("worker", "mpt_python")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        return f"MPT worker failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def row(name: str, times: list[float], tokens_per_step: int, fpt: float, peak: float, ref_step: float) -> str:
    """One table line; rates use the best (least disturbed) step, the median is shown beside it."""
    best = min(times)
    tok_s = tokens_per_step / best
    flops = fpt * tok_s
    return (f"{name:<18}{statistics.median(times) * 1000:10.1f}{best * 1000:10.1f}{tok_s:11,.0f}"
            f"{flops / 1e9:9.2f}{flops / peak:7.1%}{ref_step / best:9.2f}x")


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=4, help="measured steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile-warmup", type=int, default=3, help="extra warm-up steps of the compiled run")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--mpt-python", default=DEFAULT_MPT_PYTHON)
    p.add_argument("--activation-health", action="store_true",
                   help="only time our Composer step with and without the activation-health monitor")
    p.add_argument("--worker", choices=["mpt"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker == "mpt":
        return mpt_worker(args)
    if args.activation_health:
        return activation_health_report(args)
    report(args)


def report(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llmfoundry_lite.callbacks.speed import measure_matmul_flops
    from llmfoundry_lite.models.config import ModelConfig
    from llmfoundry_lite.models.transformer import Transformer

    torch.set_num_threads(args.threads)
    cfg = ModelConfig(d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads, vocab_size=args.vocab,
                      max_seq_len=args.seq_len)
    peaks = [measure_matmul_flops(reps=30)]
    ours, bare, compiled = [], [], []
    for _ in range(args.rounds):  # interleave so machine noise hits all alike
        batches = next_token_batches(cfg, args.warmup + args.steps, args.batch)
        ours += composer_step_times(cfg, batches)[args.warmup:]
        torch.manual_seed(0)
        bare += bare_loop_step_times(Transformer(cfg), [b["input_ids"] for b in batches], lambda m, x: m(x))[args.warmup:]
        warm = next_token_batches(cfg, args.compile_warmup, args.batch)
        compiled += composer_step_times(cfg, warm + batches, compile_model=True)[args.compile_warmup + args.warmup:]
        peaks.append(measure_matmul_flops(reps=30))
    mpt = run_mpt(args)
    peak = max(peaks + [measure_matmul_flops(reps=30)])  # best of several: the undisturbed rate
    tokens = args.batch * args.seq_len
    fpt = flops_per_token(Transformer(cfg), cfg.n_layers, cfg.d_model, cfg.max_seq_len)
    ref = min(bare)
    print(f"model: d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.n_heads} heads, vocab {cfg.vocab_size}, "
          f"{cfg.num_params():,} params; batch {args.batch} x seq {args.seq_len}; {args.threads} threads; fp32 CPU; "
          f"{len(ours)} measured steps each")
    print(f"matmul peak (best fp32 torch.mm 1024^3): {peak / 1e9:.1f} GFLOP/s; FLOPs/token (ours) {fpt:,.0f}")
    print(f"{'':<18}{'median ms':>10}{'best ms':>10}{'tokens/s':>11}{'GFLOP/s':>9}{'MFU':>7}{'vs bare':>10}")
    print(row("ours (Composer)", ours, tokens, fpt, peak, ref))
    print(row("ours, compiled", compiled, tokens, fpt, peak, ref))
    print(row("bare loop", bare, tokens, fpt, peak, ref))
    if isinstance(mpt, dict):
        print(row("MPT (llm-foundry)", mpt["times"], tokens, mpt["flops_per_token"], peak, ref)
              + f"   ({mpt['params']:,} params)")
        print(f"ours vs MPT (tokens/s, best step): {min(mpt['times']) / min(ours):.2f}x")
        print(f"ours compiled vs MPT (tokens/s, best step): {min(mpt['times']) / min(compiled):.2f}x")
    else:
        print(f"MPT (llm-foundry): skipped: {mpt}")
    print(f"ours vs bare loop (tokens/s, best step): {ref / min(ours):.2f}x")
    print(f"ours compiled vs ours eager (tokens/s, best step): {min(ours) / min(compiled):.2f}x")


def activation_health_report(args: argparse.Namespace) -> None:
    """The activation-health monitor's cost at its default interval, two ways, per round on the same
    batches, the order of the three runs rotating between rounds:

    direct   our Composer step without and with the monitor, ``warmup + interval`` steps each, so
             every measured window holds exactly one sampled step (step 1 is in the warm-up):
             mean step time with / without - 1. Honest but noisy: one sampled step in ``interval``.
    paired   the monitor at interval 2, so odd steps run no hook and even steps are sampled: the
             median over neighbouring (unsampled, sampled) pairs of their difference is the extra time of
             a sampled step, each pair seeing the same machine load; spread over ``interval`` steps and
             divided by the median step without the monitor it is the projected overhead. Unsampled steps
             run no hook, only the callback's step-number check.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llmfoundry_lite.callbacks.activation_health import ActivationHealthMonitor
    from llmfoundry_lite.models.config import ModelConfig

    torch.set_num_threads(args.threads)
    interval = ActivationHealthMonitor().interval  # the default
    cfg = ModelConfig(d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads, vocab_size=args.vocab,
                      max_seq_len=args.seq_len)
    off, on, on_plain, extra = [], [], [], []
    for r in range(args.rounds):
        batches = next_token_batches(cfg, args.warmup + interval, args.batch)
        order = ("off", "on", "paired")
        for run in order[r % 3:] + order[: r % 3]:  # each run takes each place in turn: machine drift cancels
            if run == "off":
                off += composer_step_times(cfg, batches)[args.warmup:]
            elif run == "on":
                times = composer_step_times(cfg, batches, callbacks=[ActivationHealthMonitor(interval)])[args.warmup:]
                on += times
                on_plain += [t for i, t in enumerate(times) if (args.warmup + i + 1) % interval]  # not sampled
            else:
                t = composer_step_times(cfg, batches[: 2 + 2 * args.steps], callbacks=[ActivationHealthMonitor(2)])
                extra += [t[i + 1] - t[i] for i in range(2, len(t) - 1, 2)]  # steps 3 (plain), 4 (sampled), ...
    step = statistics.median(off)
    direct = statistics.mean(on) / statistics.mean(off) - 1
    paired = statistics.median(extra) / interval / step
    print(f"model: d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.n_heads} heads, vocab {cfg.vocab_size}; "
          f"batch {args.batch} x seq {args.seq_len}; {args.threads} threads; fp32; monitor interval {interval}; "
          f"{args.rounds} rounds: {interval} measured steps without and with it, {args.steps} step pairs at interval 2")
    print(f"step without monitor: median {step * 1000:.1f} ms, mean {statistics.mean(off) * 1000:.1f} ms; with it: "
          f"mean {statistics.mean(on) * 1000:.1f} ms, median of unsampled steps {statistics.median(on_plain) * 1000:.1f} ms "
          f"({statistics.median(on_plain) / step - 1:+.2%})")
    print(f"sampled step extra time: median {statistics.median(extra) * 1000:.1f} ms over {len(extra)} pairs "
          f"({statistics.median(extra) / step:.1%} of a step)")
    print(f"activation-health overhead at interval {interval}: {paired:+.2%} (paired), {direct:+.2%} (direct); goal <= 3%")


if __name__ == "__main__":
    main(sys.argv[1:])
