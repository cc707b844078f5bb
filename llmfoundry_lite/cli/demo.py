"""``make demo``: source code on disk → shards → trained code-tiny → HF export → pass@k → LoRA
instruction tuning on pairs synthesized from the corpus, one summary.

Each stage is the real user-facing command run as a subprocess (so the demo exercises
exactly what the README documents) and is skipped when its output is already there,
so a killed demo resumes where it stopped. The summary at the end reads every number
from the artifacts the stages wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmfoundry_lite.cli.common import fail

ROOT = Path(__file__).resolve().parents[2]
"""The repository checkout: the stages are its user-facing commands, run from there."""
RUN = Path("runs/code-tiny")
LORA_RUN = Path("runs/code-tiny-lora")
INSTRUCT = Path("data/instruct")
SAMPLE_PROMPT = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'


@dataclass(frozen=True)
class Stage:
    """One step of the demo: a command and the artifact that proves it already ran."""

    name: str
    command: list[str]
    done: Callable[[], bool]


def _bin(name: str) -> str:
    """A console script of this interpreter's environment (``composer``)."""
    return str(Path(sys.executable).with_name(name))


def _newer(path: Path, than: Path) -> Callable[[], bool]:
    """Done when ``path`` exists and was written after ``than`` (a retrained model invalidates it)."""
    return lambda: path.exists() and than.exists() and path.stat().st_mtime >= than.stat().st_mtime


def stages() -> list[Stage]:
    """The demo's stages in order (data prep reuses its own finished stages)."""
    py = sys.executable
    ckpt = RUN / "latest-rank0.pt"
    he = RUN / "humaneval.jsonl"
    trained = RUN / "train_summary.json"
    exported = RUN / "hf" / "sample_generation.txt"
    return [
        Stage("data: local corpus → filter + X-ray → vocabulary → MDS shards",
              [py, "data_prep/shard_stack.py"], lambda: False),
        Stage("train code-tiny (next-token + FIM + UL2), W&B offline",
              [_bin("composer"), "train.py", "yamls/code-tiny.yaml"], trained.exists),
        Stage("export to Hugging Face and generate with transformers",
              [py, "scripts/export_hf.py", str(ckpt), "--output", str(RUN / "hf"), "--prompt", SAMPLE_PROMPT],
              _newer(exported, trained)),
        Stage("HumanEval pass@1/pass@10 (n=10) and execution-based voting, in the bwrap sandbox",
              [py, "eval/humaneval.py", "--model", str(RUN / "hf"), "--n-samples", "10", "--k", "1,10", "--select", "vote",
               "--temperature", "0.8", "--top-p", "0.95", "--max-new-tokens", "128", "--output", str(he)],
              _newer(Path(f"{he}_summary.json"), exported)),
        Stage("HumanEval single-line infilling (FIM)",
              [py, "eval/humaneval.py", "--task", "humaneval-infill", "--model", str(RUN / "hf"),
               "--temperature", "0", "--max-new-tokens", "48", "--output", str(RUN / "humaneval_infill.jsonl")],
              _newer(RUN / "humaneval_infill.jsonl_summary.json", exported)),
        Stage("instruction pairs from the kept corpus's documented functions, tests run in the sandbox",
              [py, "data_prep/synthesize_instruct.py", "--input", "data/filtered/kept", "--output", str(INSTRUCT),
               "languages=[Python]"],  # the tuned model is scored on Python HumanEval
              _newer(INSTRUCT / "stats.json", Path("data/filtered/stats.json"))),
        Stage("LoRA instruction tuning of code-tiny on those pairs",
              [_bin("composer"), "train.py", "yamls/finetune/code-tiny-lora.yaml"],
              lambda: _newer(LORA_RUN / "train_summary.json", INSTRUCT / "stats.json")()
              and _newer(LORA_RUN / "train_summary.json", trained)()),
        Stage("HumanEval pass@1 of the LoRA-tuned model (greedy), same harness",
              [py, "eval/humaneval.py", "--model", str(LORA_RUN), "--n-samples", "1", "--k", "1",
               "--temperature", "0", "--max-new-tokens", "128", "--output", str(LORA_RUN / "humaneval.jsonl")],
              _newer(LORA_RUN / "humaneval.jsonl_summary.json", LORA_RUN / "train_summary.json")),
    ]


def run_stages(selected: list[Stage]) -> dict[str, float]:
    """Run each stage not yet done, streaming its output; return seconds per stage."""
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"), "PYTHONUNBUFFERED": "1"}
    timings: dict[str, float] = {}
    for i, stage in enumerate(selected, 1):
        header = f"[{i}/{len(selected)}] {stage.name}"
        if stage.done():
            print(f"\n=== {header}: already done, skipped", flush=True)
            continue
        print(f"\n=== {header}\n$ {' '.join(_quote(c) for c in stage.command)}", flush=True)
        start = time.monotonic()
        proc = subprocess.run(stage.command, cwd=ROOT, env=env)
        timings[stage.name] = time.monotonic() - start
        if proc.returncode != 0:
            raise SystemExit(f"demo stage failed ({header}) with exit code {proc.returncode}; rerun `make demo` to resume")
    return timings


def _quote(word: str) -> str:
    """Enough quoting to paste a printed stage command back into a shell."""
    return repr(word) if any(c in word for c in " \n\"'") else word


def main(argv: list[str]) -> None:
    """Run the demo, then print the summary."""
    from llmfoundry_lite.cli.demo_summary import format_summary

    if argv:
        fail(f"usage: python scripts/demo.py   (no arguments; every stage is configured by its YAML); got {argv}")
    if not (ROOT / "train.py").is_file():
        fail(f"error: the demo runs the commands of a repository checkout; {ROOT} is not one")
    os.chdir(ROOT)  # stage outputs are checked relative to the repository, where the commands run
    start = time.monotonic()
    timings = run_stages(stages())
    print("\n" + format_summary(ROOT, RUN, timings, time.monotonic() - start))
