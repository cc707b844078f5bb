"""The GPU check behind ``scripts/gpu_check.sh``: one table, one GPU, well under 10 minutes.

    python scripts/gpu_check.py [--steps 8] [--microbatch 8] [--smoke]

Rows, all measured in this run:
  train          code-1b shapes (d 2048, 24 layers, 16 heads / 4 KV, vocab 32768) at seq 2048, amp_bf16,
                 our ComposerDecoder in Composer's Trainer as train.py builds it (token-weighted accumulation,
                 global-norm clipping): tokens/s, MFU against the chip's dense bf16 peak, peak memory —
                 without a mask, with the doc mask (attn_impl auto: FlexAttention on CUDA), and compiled
  kernels        which attention kernels a forward launched: no mask, doc mask through SDPA (dense mask),
                 doc mask through FlexAttention (from the profiler's kernel names)
  SDPA kernel    which SDPA backend (flash / mem-efficient / cudnn / math) ran a forward + backward of the
                 model's attention with a dense doc mask and grouped-query attention (n_kv_heads < n_heads)
  fsdp export    ``composer -n 1 train.py`` with FSDP2 FULL_SHARD, bf16 and sharded checkpoints on tiny
                 shards, then ``export_hf`` of the sharded checkpoint: transformers' logits vs ours
  serving        code-1b shapes (vocab cut to the test tokenizer's 1,024, random bf16 weights): 64 prompts
                 x 64 greedy tokens through our continuous-batching engine (8 slots, no HTTP), tokens/s;
                 then the same export through vLLM's offline ``LLM.generate`` where vLLM is installed
  MPT-1B         llm-foundry's MPTForCausalLM at the same shape in a bare bf16 loop, from its own
                 site dir (``LLMF_SITE``), as ``make bench`` keeps it out of our environment
  commands       a few steps of each real user command as a subprocess — ``composer train.py`` on the
                 code-tiny-streams mixture with every default callback on, a LoRA fine-tune of that
                 checkpoint, ``scripts/export_hf.py`` of it, ``scripts/serve.py`` answering one HTTP
                 request — each ``ok <s>`` with what its artifacts show, or the error's last line
                 (``gpu_check_commands.py``)

``--smoke`` runs every row at toy sizes on CPU (fp32, gloo) so the script's code is exercised without a
GPU; ``--only measure`` / ``--only commands`` runs one half.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DENSE_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}  # vendor datasheets


@functools.cache
def peak_flops() -> float:
    if not torch.cuda.is_available():
        from llmfoundry_lite.callbacks.speed import measure_matmul_flops

        return measure_matmul_flops()
    name = torch.cuda.get_device_name()
    return next((v for k, v in DENSE_BF16_PEAK.items() if k in name), 989e12)


def model_cfg(smoke: bool, **extra):
    from llmfoundry_lite.models.config import ModelConfig

    if smoke:
        return ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=1024, max_seq_len=128, **extra)
    return ModelConfig(d_model=2048, n_layers=24, n_heads=16, n_kv_heads=4, vocab_size=32768, max_seq_len=2048, **extra)


def synthetic_batches(cfg, n: int, rows: int, docs_per_row: int) -> list[dict[str, torch.Tensor]]:
    """Random tokens with ``docs_per_row`` segments per row (segment ids, no padding)."""
    T = cfg.max_seq_len
    seg = (torch.arange(T) * docs_per_row // T + 1).expand(rows, T)
    return [{"input_ids": (ids := torch.randint(2, cfg.vocab_size, (rows, T))), "labels": ids.clone(),
             "segment_ids": seg.clone()} for _ in range(n)]


def train_speed(cfg, steps: int, rows: int, microbatch: int, compile_model: bool, smoke: bool) -> dict:
    """Steady-state tokens/s, MFU and peak memory of our Composer step on one device."""
    from benchmarks.bench_train import composer_step_times

    warmup = 3 if compile_model else 2
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    times = composer_step_times(cfg, synthetic_batches(cfg, warmup + steps, rows, 4), compile_model,
                                precision="fp32" if smoke else "amp_bf16", microbatch=microbatch)
    tok_s = rows * cfg.max_seq_len / min(times[warmup:])
    mem = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return {"tokens_per_s": tok_s, "mfu": cfg.flops_per_token() * tok_s / peak_flops(), "peak_mem_gib": mem}


def attention_kernels(cfg_factory, smoke: bool) -> dict[str, str]:
    """Attention-looking kernel names launched by one forward, per masking path."""
    from torch.profiler import ProfilerActivity, profile

    from llmfoundry_lite.models.transformer import Transformer

    out = {}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for label, doc_mask, impl in (("no mask", False, "sdpa"), ("doc mask, sdpa", True, "sdpa"), ("doc mask, flex", True, "flex")):
        cfg = cfg_factory(smoke, doc_mask=doc_mask, attn_impl=impl)
        cfg = type(cfg)(**{**cfg.__dict__, "n_layers": 1})
        model = Transformer(cfg).to(device)
        batch = synthetic_batches(cfg, 1, 1, 4)[0]
        args = (batch["input_ids"].to(device), batch["segment_ids"].to(device))
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            model(*args)  # compile / warm-up
            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
            with profile(activities=acts) as prof:
                model(*args)
        names = {e.name for e in prof.events() if any(s in e.name.lower() for s in ("flash", "efficient", "fmha",
                                                                                    "flex", "attention", "triton"))}
        out[label] = ", ".join(sorted(names)[:3]) or "none matched"
    return out


SDPA_BACKENDS = {  # the op SDPA's dispatcher chose, named the same on every device -> the backend it is
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash",
    "aten::_scaled_dot_product_efficient_attention": "mem-efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_attention_math": "math",
}


def sdpa_backends(op_names: set[str]) -> list[str]:
    """The SDPA backends among profiled op names (a backward op counts for its forward's backend)."""
    return sorted({b for op, b in SDPA_BACKENDS.items() if op in op_names or f"{op}_backward" in op_names})


def sdpa_gqa_kernel(smoke: bool) -> tuple[str, str]:
    """Which SDPA backend ran one training step (forward + backward) of the model's attention with a
    dense doc mask and grouped-query attention (n_kv_heads < n_heads): the dispatcher's op from the
    profiler, and on CUDA the attention kernels it launched. Observes only; the choice is attention.py's."""
    from torch.profiler import ProfilerActivity, profile

    from llmfoundry_lite.models.transformer import Transformer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = model_cfg(smoke, doc_mask=True, attn_impl="sdpa")
    cfg = type(cfg)(**{**cfg.__dict__, "n_layers": 1})
    model = Transformer(cfg).to(device)
    batch = synthetic_batches(cfg, 1, 1, 4)[0]
    args = (batch["input_ids"].to(device), batch["segment_ids"].to(device))
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        model(*args).float().mean().backward()  # warm-up
        with profile(activities=acts) as prof:
            model(*args).float().mean().backward()
    names = {e.name for e in prof.events()}
    backends = sdpa_backends(names) or ["none of " + ", ".join(sorted(set(SDPA_BACKENDS.values())))]
    ops = sorted(op for op in SDPA_BACKENDS if op in names)
    kernels = sorted({e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
                      and any(s in e.name.lower() for s in ("flash", "fmha", "efficient_attention", "cudnn", "sdpa"))})
    where = f"; kernels {', '.join(k[:60] for k in kernels[:2])}" if kernels else ""  # templated names run long
    label = f"SDPA kernel, GQA {cfg.n_heads}/{cfg.n_kv_heads} heads + dense mask"
    return label, f"{' + '.join(backends)} on {device}: {', '.join(ops) or 'no SDPA op'} (forward + backward){where}"


def fsdp_export(smoke: bool) -> dict:
    """FSDP2 on one rank, bf16, sharded checkpoints, then the export round trip."""
    from llmfoundry_lite.cli.export import export_checkpoint
    from llmfoundry_lite.models.load import load_for_inference
    from tests.training.shards import tiny_overrides, write_shards

    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    shards, save = write_shards(tmp / "shards"), tmp / "run"
    args = [*tiny_overrides(shards, save, max_duration="4ba", save_interval="4ba", eval_interval="4ba"),
            "fsdp_config.sharding_strategy=FULL_SHARD", "fsdp_config.state_dict_type=sharded",
            f"precision={'fp32' if smoke else 'amp_bf16'}", "fsdp_config.mixed_precision=PURE"]
    composer = Path(sys.executable).parent / "composer"
    launcher = [str(composer)] if composer.exists() else [sys.executable, "-m", "composer.cli.launcher"]
    proc = subprocess.run([*launcher, "-n", "1", "train.py", "yamls/code-tiny.yaml", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=400)
    if proc.returncode != 0:
        return {"ok": False, "detail": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    from transformers import AutoModelForCausalLM

    export_checkpoint(save, tmp / "hf", max_shard_bytes=2_000_000_000)
    ours, _ = load_for_inference(str(save))
    hf = AutoModelForCausalLM.from_pretrained(str(tmp / "hf"), dtype=torch.float32).eval()
    ids = torch.randint(0, ours.cfg.vocab_size, (2, 32))
    with torch.no_grad():
        diff = (hf(ids).logits - ours(ids)).abs().max().item()
    sharded = (save / "latest-rank0.pt").resolve().is_dir()
    return {"ok": sharded and diff < 1e-4, "detail": f"sharded checkpoint {sharded}, logits max |diff| {diff:.2e}"}


def serving_speed(smoke: bool) -> list[tuple[str, str]]:
    """Tokens/s of our serving engine and, where installed, of vLLM on the same HF export."""
    import dataclasses
    import threading

    from llmfoundry_lite.models.hf_export import export_hf
    from llmfoundry_lite.models.transformer import Transformer
    from llmfoundry_lite.serve.engine import ContinuousEngine
    from llmfoundry_lite.serve.job import Job, SamplingParams
    from llmfoundry_lite.tokenizer.io import load_tokenizer

    tokenizer = load_tokenizer(ROOT / "tests" / "assets" / "tokenizer")
    cfg = dataclasses.replace(model_cfg(smoke), vocab_size=tokenizer.get_vocab_size(), max_seq_len=512)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    model = Transformer(cfg).to(device=device, dtype=dtype)
    prompts = [[(7 * i + j) % 900 + 100 for j in range(64 + i % 64)] for i in range(64)]
    engine = ContinuousEngine(model, tokenizer, max_batch=8, max_waiting=256)
    done, produced = threading.Semaphore(0), []

    def sink(delta) -> None:
        produced.append(len(delta.token_ids))
        if delta.finish_reason is not None:
            done.release()

    def generate_all() -> float:
        produced.clear()
        start = time.perf_counter()
        for ids in prompts:
            engine.submit(Job(ids, 1, SamplingParams(max_tokens=64), sink))
        for _ in prompts:
            done.acquire()
        return sum(produced) / (time.perf_counter() - start)

    generate_all()  # warm-up
    rows = [("serving, ours (8 slots, bf16)" if device == "cuda" else "serving, ours (8 slots)",
             f"{generate_all():,.0f} tok/s, 64 x 64 greedy tokens")]
    engine.close()
    try:
        import vllm
    except ImportError:
        return [*rows, ("serving, vLLM", "skipped: vllm is not installed in this environment")]
    out = export_hf(model.float().cpu(), tokenizer, Path(tempfile.mkdtemp(prefix="gpu_check_vllm_")), dtype=dtype)
    llm = vllm.LLM(model=str(out), dtype="bfloat16", max_model_len=512, gpu_memory_utilization=0.5, seed=0)
    params = vllm.SamplingParams(temperature=0.0, max_tokens=64, ignore_eos=True)
    batch = [{"prompt_token_ids": ids} for ids in prompts]
    llm.generate(batch, params, use_tqdm=False)  # warm-up
    start = time.perf_counter()
    results = llm.generate(batch, params, use_tqdm=False)
    tokens = sum(len(r.outputs[0].token_ids) for r in results)
    return [*rows, (f"serving, vLLM {vllm.__version__}", f"{tokens / (time.perf_counter() - start):,.0f} tok/s, "
                    "64 x 64 greedy tokens (offline LLM.generate, all at once)")]


def mpt_worker(args: argparse.Namespace) -> None:
    """Runs with llm-foundry on sys.path: one JSON line with MPT's best step time and its FLOPs/token."""
    from llmfoundry.models.mpt import MPTConfig, MPTForCausalLM

    cfg = model_cfg(args.smoke)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mpt = MPTForCausalLM(MPTConfig(d_model=cfg.d_model, n_heads=cfg.n_heads, n_layers=cfg.n_layers, expansion_ratio=4,
                                   max_seq_len=cfg.max_seq_len, vocab_size=cfg.vocab_size, no_bias=True,
                                   attn_config={"attn_impl": "torch", "alibi": True}, init_device=device))
    opt = torch.optim.AdamW(mpt.parameters(), lr=1e-4, fused=device == "cuda")
    times = []
    for _ in range(2 + args.steps):
        x = torch.randint(0, cfg.vocab_size, (args.microbatch, cfg.max_seq_len), device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = mpt(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(mpt.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    n_matmul = sum(m.weight.numel() for m in mpt.modules() if isinstance(m, torch.nn.Linear))
    print(json.dumps({"best_s": min(times[2:]), "flops_per_token": 6 * n_matmul + 12 * cfg.n_layers * cfg.d_model * cfg.max_seq_len}))


def mpt_speed(args: argparse.Namespace) -> dict | str:
    site = os.environ.get("LLMF_SITE")
    if not site:
        return "skipped: LLMF_SITE (llm-foundry's own site dir) not set"
    cmd = [sys.executable, __file__, "--worker", "mpt", f"--steps={args.steps}", f"--microbatch={args.microbatch}"]
    cmd += ["--smoke"] if args.smoke else []
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env={**os.environ, "PYTHONPATH": site})
    if proc.returncode != 0:
        return f"failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:160]}"
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    tok_s = args.microbatch * model_cfg(args.smoke).max_seq_len / r["best_s"]
    return {"tokens_per_s": tok_s, "mfu": r["flops_per_token"] * tok_s / peak_flops()}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--microbatch", type=int, default=8, help="rows per step (one microbatch) at seq 2048")
    p.add_argument("--smoke", action="store_true", help="toy sizes on CPU: exercise the code without a GPU")
    p.add_argument("--only", choices=["measure", "commands"], default=None,
                   help="measure: the speed, kernel, FSDP, serving and MPT rows; commands: the user-command rows")
    p.add_argument("--worker", choices=["mpt"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker == "mpt":
        return mpt_worker(args)
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device; on CPU run it with --smoke (toy sizes, fp32)")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (smoke)"
    print(f"gpu_check on {device}; torch {torch.__version__}; peak for MFU {peak_flops() / 1e12:.3g} TFLOP/s")
    rows = [] if args.only == "commands" else measure_rows(args)
    if args.only != "measure":
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the commands run in their own processes: leave them the memory
        rows += command_rows(args.smoke)
    print(format_table(rows))


def command_rows(smoke: bool) -> list[tuple[str, str]]:
    """The real user commands, a few steps each (``gpu_check_commands.py``), in a temp dir that is removed
    when every row passed and kept (its path printed) for reading the logs and artifacts when one did not."""
    import shutil

    from gpu_check_commands import CommandCheck, Outcome

    print("commands (a few steps each, as subprocesses):", flush=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_commands_"))
    rows = CommandCheck(work, smoke).run()
    if all(isinstance(out, Outcome) and out.ok for _, out in rows):
        shutil.rmtree(work)
    else:
        print(f"commands: runs, exports and serve.log kept in {work}", flush=True)
    return [(label, out if isinstance(out, str) else out.cell()) for label, out in rows]


def format_table(rows: list[tuple[str, str]]) -> str:
    """Two columns: the row's name padded to the longest, then its value."""
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def measure_rows(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The rows measured in this process (train speed, kernels, FSDP export, serving, MPT peer)."""
    rows = []
    for label, extra, compiled in (("no mask", {}, False), ("doc mask (attn_impl auto)", {"doc_mask": True}, False),
                                   ("no mask, compiled", {}, True)):
        r = train_speed(model_cfg(args.smoke, **extra), args.steps, args.microbatch, args.microbatch, compiled, args.smoke)
        shape = "toy model (smoke)" if args.smoke else "code-1b"
        mem = f", peak {r['peak_mem_gib']:.1f} GiB" if torch.cuda.is_available() else ""
        rows.append((f"train {shape} seq {model_cfg(args.smoke).max_seq_len}, {label}",
                     f"{r['tokens_per_s']:,.0f} tok/s, MFU {r['mfu']:.1%}{mem}"))
    rows += [(f"attention kernels, {k}", v) for k, v in attention_kernels(model_cfg, args.smoke).items()]
    rows.append(sdpa_gqa_kernel(args.smoke))
    fe = fsdp_export(args.smoke)
    rows.append(("FSDP2 1 rank, sharded ckpt -> HF", ("ok: " if fe["ok"] else "FAILED: ") + fe["detail"]))
    rows += serving_speed(args.smoke)
    m = mpt_speed(args)
    rows.append(("llm-foundry MPT-1B (attn torch)", m if isinstance(m, str) else
                 f"{m['tokens_per_s']:,.0f} tok/s, MFU {m['mfu']:.1%}"))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
