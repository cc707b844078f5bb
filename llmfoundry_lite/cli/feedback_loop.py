"""``python scripts/feedback_loop.py``: the loop from users back to training, on this machine.

1. Prompts: HumanEval-style prompts (signature + docstring) from the documented functions of the
   demo's filtered corpus, split by task into the A/B round's and the second round's.
2. Round 1: ``scripts/serve.py`` holds the base and a variant (the demo's LoRA fine-tune) under
   ``--ab``; a simulated editor population (``serve/editors.py``) asks, is shown every choice and
   accepts or rejects it; everything lands in round 1's feedback store.
3. ``scripts/feedback_export.py`` → ``data_prep/feedback_to_train.py``: preference pairs.
4. ``composer train.py`` with the DPO preset: a LoRA adapter of the base trained on those pairs.
5. Round 2: the base and the DPO adapter under ``--ab``, the same population on the held-out prompts.
6. ``scripts/feedback_report.py``: round 2's dashboard, and one table: acceptance by variant and
   language in both rounds, and the two-proportion test of DPO against the base.

Every stage is the user-facing command, run as a subprocess, except the simulated users (clients,
in this process). Nothing is reused between runs: ``--out`` is written afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from llmfoundry_lite.cli.common import fail

ROOT = Path(__file__).resolve().parents[2]
BASE_NAME = "code-tiny"


def parse_args(argv: list[str]) -> argparse.Namespace:
    from llmfoundry_lite.serve.editors import Population

    p = argparse.ArgumentParser(prog="scripts/feedback_loop.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="runs/code-tiny", help="the base model (what scripts/serve.py --model takes)")
    p.add_argument("--variant", default="sft=runs/code-tiny-lora", metavar="NAME=PATH",
                   help="round 1's other variant: a LoRA adapter of the base")
    p.add_argument("--corpus", default="data/filtered/kept", help="filtered corpus the prompts come from")
    p.add_argument("--dpo-yaml", default="yamls/finetune/code-tiny-dpo.yaml")
    p.add_argument("--out", default="runs/feedback-loop", help="everything the loop writes (replaced)")
    p.add_argument("--prompts", type=int, default=200, help="prompts per language drawn from the corpus")
    p.add_argument("--users", type=int, default=32)
    p.add_argument("--requests", type=int, default=8, help="requests per user per round")
    p.add_argument("--temperature", type=float, default=Population.temperature)
    p.add_argument("--max-tokens", type=int, default=Population.max_tokens)
    p.add_argument("--n", type=int, default=Population.n, help="choices shown per request")
    p.add_argument("--single-line", action="store_true",
                   help="line completions: every request stops at the end of its first line")
    p.add_argument("--port", type=int, default=8791)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def run(step: str, command: list[str]) -> None:
    """One user-facing command, its output streamed; a failure ends the loop naming the step."""
    print(f"\n=== {step}\n$ {' '.join(command)}", flush=True)
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"), "PYTHONUNBUFFERED": "1"}
    if subprocess.run(command, cwd=ROOT, env=env).returncode != 0:
        fail(f"feedback loop: {step} failed")


def serve(args: argparse.Namespace, db: Path, variant: str, log: Path) -> subprocess.Popen:
    """``scripts/serve.py`` with the base and ``variant`` (NAME=PATH) split 50/50, recording into ``db``."""
    name = variant.split("=", 1)[0]
    command = [sys.executable, "scripts/serve.py", "--model", args.base, "--model-name", BASE_NAME,
               "--port", str(args.port), "--lora", variant, "--ab", f"{BASE_NAME}=1", "--ab", f"{name}=1",
               "--feedback-db", f"sqlite:///{db.resolve()}", "--feedback-texts", "--log-dir", str(db.parent)]  # fmt: skip
    print(f"\n=== serve the base and {name!r}, split 50/50\n$ {' '.join(command[1:])}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", args.port)) == 0:
                return proc
        time.sleep(0.5)
    proc.kill()
    fail(f"feedback loop: the server did not start; see {log}")
    raise AssertionError  # unreachable


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)  # drains, then exits 0
    proc.wait(120)


def simulate_round(args: argparse.Namespace, prompts: Path, db: Path, variant: str, round_no: int) -> dict:
    from llmfoundry_lite.serve.editors import Population, load_prompts, simulate

    population = Population(users=args.users, requests_per_user=args.requests, n=args.n, temperature=args.temperature,
                            max_tokens=args.max_tokens, seed=args.seed + round_no, user_prefix=f"round{round_no}-editor",
                            single_line=args.single_line)  # fmt: skip
    proc = serve(args, db, variant, db.with_suffix(".server.log"))
    try:
        start = time.monotonic()
        tally = simulate(f"http://127.0.0.1:{args.port}", load_prompts([prompts]), population)
        print(f"round {round_no}: {sum(tally.shown.values())} choices judged in {time.monotonic() - start:.0f} s, "
              f"{tally.failed_requests} refused ({dict(tally.failures) or 'none'})", flush=True)  # fmt: skip
    finally:
        stop(proc)
    return {"population": asdict(population), "refused_requests": dict(tally.failures),
            "verdicts": {"/".join(k): v for k, v in sorted(tally.reasons.items())}}  # fmt: skip


def write_prompts(args: argparse.Namespace, out: Path) -> tuple[Path, Path]:
    """Round 1's and round 2's prompts: every third task goes to round 2, so no prompt is in both."""
    from llmfoundry_lite.serve.editors import corpus_prompts

    prompts = corpus_prompts(ROOT / args.corpus, args.prompts, args.seed)
    if not prompts:
        fail(f"feedback loop: no documented functions in {args.corpus}; run `make demo` first")
    paths = out / "prompts-round1.jsonl", out / "prompts-round2.jsonl"
    for i, path in enumerate(paths):
        path.write_text("".join(json.dumps(p) + "\n" for k, p in enumerate(prompts) if (k % 3 == 2) == bool(i)))
    print(f"\n=== prompts: {len(prompts)} documented functions from {args.corpus} "
          f"({', '.join(f'{p.name}' for p in paths)})", flush=True)  # fmt: skip
    return paths


def table(out: Path, rounds: dict[int, Path]) -> str:
    """Acceptance by round, variant and language, and each round's test of the variant against the base."""
    import pyarrow.parquet as pq

    from llmfoundry_lite.serve.feedback_stats import feedback_stats

    lines = ["| round | variant | language | shown | accepted | rate | 95% CI |", "|---|---|---|---:|---:|---:|---|"]
    tests = []
    for round_no, export in rounds.items():
        stats = feedback_stats(pq.read_table(export / "completions.parquet"), pq.read_table(export / "feedback.parquet"),
                               baseline=BASE_NAME)  # fmt: skip
        for a in [*stats.by_variant, *stats.by_language]:
            lines.append(f"| {round_no} | {a.variant} | {a.language or 'all'} | {a.shown} | {a.accepted} | "
                         f"{a.rate:.1%} | {a.low:.1%}–{a.high:.1%} |")  # fmt: skip
        for c in stats.comparisons:
            if c.p_value is not None:
                tests.append(f"round {round_no}: {c.variant} vs {c.baseline} ({c.language or 'all languages'}): "
                             f"{c.diff:+.1%}, z = {c.z:.2f}, p = {c.p_value:.3g}")  # fmt: skip
    return "\n".join(lines + [""] + tests)


def check_inputs(args: argparse.Namespace) -> None:
    """Every input the loop reads exists, before anything is written or removed."""
    paths = {"--base": args.base, "--variant": args.variant.partition("=")[2] or args.variant,
             "--corpus": args.corpus, "--dpo-yaml": args.dpo_yaml}  # fmt: skip
    for flag, path in paths.items():
        if not (ROOT / path).exists():
            fail(f"error: {flag} {path} does not exist (the loop needs `make demo`'s outputs)")


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    os.chdir(ROOT)
    check_inputs(args)
    out = ROOT / args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    py = sys.executable
    first, second = write_prompts(args, out)
    summary = {"round1": simulate_round(args, first, out / "round1" / "feedback.sqlite", args.variant, 1)}
    run("export round 1", [py, "scripts/feedback_export.py", "--db", f"sqlite:///{out / 'round1' / 'feedback.sqlite'}",
                           "--output", str(out / "round1" / "export")])  # fmt: skip
    run("feedback → training rows", [py, "data_prep/feedback_to_train.py", "--input", str(out / "round1" / "export"),
                                     "--output", str(out / "train")])  # fmt: skip
    run("DPO on round 1's preferences (LoRA of the base)",
        [str(Path(py).with_name("composer")), "train.py", args.dpo_yaml, f"base={args.base}",
         f"train_loader.data={out / 'train' / 'preferences.jsonl'}", f"save_folder={out / 'dpo'}", "eval_loader=null",
         f"preference.reference_cache={out / 'dpo-reference'}"])
    summary["round2"] = simulate_round(args, second, out / "round2" / "feedback.sqlite", f"dpo={out / 'dpo'}", 2)
    run("export round 2", [py, "scripts/feedback_export.py", "--db", f"sqlite:///{out / 'round2' / 'feedback.sqlite'}",
                           "--output", str(out / "round2" / "export")])  # fmt: skip
    run("round 2's dashboard", [py, "scripts/feedback_report.py", "--input", str(out / "round2" / "export"),
                                "--output", str(out / "dashboard.html"), "--baseline", BASE_NAME])  # fmt: skip
    result = table(out, {1: out / "round1" / "export", 2: out / "round2" / "export"})
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "acceptance.md").write_text(result + "\n")
    print(f"\n=== acceptance (simulated editors; {out / 'dashboard.html'})\n{result}")
