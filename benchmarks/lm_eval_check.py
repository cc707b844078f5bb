"""lm-evaluation-harness against our server: its ``local-completions`` model must score a task as its ``hf`` model does.

    make lm-eval-check      # builds .lm-eval-venv (lm-eval on our torch/transformers pins), then runs this
    .venv/bin/python benchmarks/lm_eval_check.py [--model HF_DIR] [--lm-eval .lm-eval-venv/bin/lm_eval]

A real client, not a replay of its requests: ``scripts/serve.py`` serves an HF export in a child
process, and lm-eval's own CLI (in its own venv: it is no dependency of ours) runs the multiple-choice
task ``tests/serve/harness_task/code_choice.yaml`` twice, through ``local-completions`` (token-id
prompts in lists of ``--batch-size``, ``echo``, ``logprobs: 1``, ``max_tokens: 1``: what it sends for
log-likelihoods) and through ``hf`` (``LlamaForCausalLM`` in fp32 on the same export). Every
(document, choice) log-likelihood of the two runs is printed with their difference; the check fails
(exit 1) unless both score the same requests and the largest difference is at most ``--tol``.

The export is ``--model``, else ``runs/code-tiny/hf`` when ``make demo`` made it, else a seeded
random model of code-tiny's shape written to a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_EXPORT = ROOT / "runs" / "code-tiny" / "hf"
TOKENIZER = ROOT / "tests" / "assets" / "tokenizer"
TASK_DIR = ROOT / "tests" / "serve" / "harness_task"
TASK = "llmfoundry_code_choice"
NAME = "lm-eval-check"


def seeded_export(out: Path) -> Path:
    """A seeded random decoder of code-tiny's shape (d 256, 4 layers, 512 context) as an HF directory."""
    import torch

    from llmfoundry_lite.models.config import ModelConfig
    from llmfoundry_lite.models.hf_export import export_hf
    from llmfoundry_lite.models.transformer import Transformer
    from llmfoundry_lite.tokenizer.io import load_tokenizer

    tokenizer = load_tokenizer(TOKENIZER)
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=256, n_layers=4, n_heads=4, vocab_size=tokenizer.get_vocab_size(), max_seq_len=512)
    return export_hf(Transformer(cfg), tokenizer, out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path) -> tuple[subprocess.Popen, str]:
    """``scripts/serve.py`` on ``model`` in a child process, once it answers ``/v1/models``."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "scripts/serve.py", "--model", str(model), "--port", str(port), "--model-name", NAME,
           "--device", "cpu", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/models", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not come up (exit status {proc.poll()})")


def run_lm_eval(lm_eval: str, model: str, model_args: str, out: Path, batch_size: int) -> dict[tuple[int, int], float]:
    """lm-eval's CLI on the task; (document, choice) → the log-likelihood it logged for it."""
    cmd = [lm_eval, "run", "--model", model, "--model_args", model_args, "--tasks", TASK, "--include_path",
           str(TASK_DIR), "--batch_size", str(batch_size), "--output_path", str(out), "--log_samples",
           "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    scores = {}
    for path in out.rglob(f"samples_{TASK}_*.jsonl"):
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            for choice, resp in enumerate(sample["resps"]):
                scores[(sample["doc_id"], choice)] = float(resp[0][0])  # [[loglikelihood, is_greedy]]
    if not scores:
        raise SystemExit(f"lm-eval ({model}) logged no samples under {out}")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="an HF export (default: runs/code-tiny/hf, else a seeded one)")
    parser.add_argument("--lm-eval", default=str(ROOT / ".lm-eval-venv" / "bin" / "lm_eval"))
    parser.add_argument("--batch-size", type=int, default=4, help="prompts per local-completions request")
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lm_eval_check_"))
    model = args.model or (DEMO_EXPORT if (DEMO_EXPORT / "config.json").is_file() else seeded_export(work / "hf"))
    max_len = json.loads((model / "config.json").read_text())["max_position_embeddings"]
    proc, url = start_server(model)
    try:
        ours = run_lm_eval(args.lm_eval, "local-completions", f"model={NAME},base_url={url}/v1/completions,"
                           f"tokenizer_backend=huggingface,tokenizer={model},max_length={max_len}",
                           work / "local-completions", args.batch_size)  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    hf = run_lm_eval(args.lm_eval, "hf", f"pretrained={model},dtype=float32", work / "hf-run",
                     args.batch_size)  # fmt: skip
    if ours.keys() != hf.keys():
        raise SystemExit(f"the two runs scored different requests: {sorted(ours.keys() ^ hf.keys())}")
    print(f"\nmodel {model}; task {TASK} ({len(hf)} choices)\n{'doc':>4} {'choice':>6} {'local-completions':>18} "
          f"{'hf':>12} {'|diff|':>9}")  # fmt: skip
    for key in sorted(hf):
        print(f"{key[0]:>4} {key[1]:>6} {ours[key]:>18.6f} {hf[key]:>12.6f} {abs(ours[key] - hf[key]):>9.2e}")
    worst = max(abs(ours[k] - hf[k]) for k in hf)
    print(f"max |local-completions - hf| = {worst:.2e} (tolerance {args.tol:g}): {'OK' if worst <= args.tol else 'FAIL'}")
    sys.exit(0 if worst <= args.tol else 1)


if __name__ == "__main__":
    main()
