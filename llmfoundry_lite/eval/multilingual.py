"""``--language js|cpp|java|sh`` and ``--write-problems``: HumanEval in translation, from the CLI.

Problems are translated from the Python ones in memory (``languages.translate_all``) and the
coverage (translated / total, each untranslated problem with its reason) is printed every
time. A sample's ``completion`` is appended to its problem's ``prompt`` and the ``tests``
follow; samples of untranslated problems are counted and listed, never scored silently.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmfoundry_lite.corpus.benchmarks import write_jsonl
from llmfoundry_lite.eval.config import HumanEvalConfig
from llmfoundry_lite.eval.execution import execute_translated, stderr_progress
from llmfoundry_lite.eval.languages import Coverage, get_language, translate_all
from llmfoundry_lite.eval.problems import load_problems, read_samples

if TYPE_CHECKING:
    from llmfoundry_lite.eval.humaneval import Execute, Loader
    from llmfoundry_lite.sandbox import Sandbox


def python_records(problems: dict[str, dict], stop: list[str]) -> list[dict]:
    """The original problems in the ``--write-problems`` format (tests end with ``check(entry)``)."""
    return [{"task_id": t, "language": "python", "prompt": p["prompt"],
             "tests": f"\n{p['test']}\ncheck({p['entry_point']})\n", "stop_tokens": list(stop)}
            for t, p in problems.items()]  # fmt: skip


def write_problems(cfg: HumanEvalConfig) -> Coverage | None:
    """Write ``cfg.write_problems`` for ``cfg.language``; returns (and prints) the coverage."""
    assert cfg.write_problems is not None  # the caller checks
    problems = load_problems(cfg.problems, cfg.limit)
    if cfg.language == "python":
        path = write_jsonl(cfg.write_problems, python_records(problems, cfg.generation.stop))
        print(f"python: {len(problems)}/{len(problems)} problems (the originals)\nproblems: {path}")
        return None
    coverage = translate_all(problems, cfg.language)
    path = write_jsonl(cfg.write_problems, [t.record() for t in coverage.translated.values()])
    print(f"{coverage.summary()}\nproblems: {path}")
    return coverage


def _executor(cfg: HumanEvalConfig, sandbox: Sandbox, coverage: Coverage) -> Execute:
    lang = get_language(cfg.language)

    def execute(samples: list[dict]) -> list[dict]:
        return execute_translated(coverage.translated, samples, sandbox, lang, cfg.workers, stderr_progress(),
                                  cfg.max_error_rate)

    return execute


def _extra(coverage: Coverage, skipped: list[dict]) -> dict[str, Any]:
    """The summary's account of the translation: coverage, and per translated problem how many of the original's
    test assertions its tests kept and how many statements were dropped (what a score in this language covers)."""
    total = len(coverage.translated) + len(coverage.untranslated)
    tests = {t: {"kept": tr.kept, "dropped": len(tr.dropped)} for t, tr in coverage.translated.items()}
    short = sum(1 for row in tests.values() if row["dropped"])
    print(f"tests kept per translated problem: {min((r['kept'] for r in tests.values()), default=0)}–"
          f"{max((r['kept'] for r in tests.values()), default=0)} assertions; {short} problems lost some "
          f"(the summary's 'tests' lists each)")  # fmt: skip
    return {"coverage": f"{len(coverage.translated)}/{total}", "untranslated": coverage.untranslated,
            "skipped_samples_of_untranslated_problems": len(skipped), "tests": tests}  # fmt: skip


def run_language_samples(cfg: HumanEvalConfig, sandbox: Sandbox) -> dict[str, Any]:
    """``--language L --samples FILE``: score completions of the translated problems."""
    from llmfoundry_lite.eval.humaneval import require_every_problem, score

    assert cfg.samples is not None  # guaranteed by HumanEvalConfig validation
    coverage = translate_all(load_problems(cfg.problems, cfg.limit), cfg.language)
    print(coverage.summary())
    samples = read_samples(cfg.samples, load_problems(cfg.problems))
    wanted = [s for s in samples if s["task_id"] in coverage.translated]
    skipped = [s for s in samples if s["task_id"] in coverage.untranslated]
    if skipped:
        print(f"note: {len(skipped)} samples of untranslated problems skipped: "
              f"{', '.join(sorted({s['task_id'] for s in skipped}))}")  # fmt: skip
    problems = {t: {} for t in coverage.translated}
    require_every_problem(cfg, problems, wanted)
    return score(cfg, sandbox, problems, Path(cfg.samples), wanted, _executor(cfg, sandbox, coverage),
                 _extra(coverage, skipped))  # fmt: skip


def run_language_model(cfg: HumanEvalConfig, sandbox: Sandbox, load: Loader) -> dict[str, Any]:
    """``--language L --model PATH``: sample completions of the translated prompts, then score."""
    from llmfoundry_lite.eval.generation import sample_humaneval
    from llmfoundry_lite.eval.humaneval import default_output, load_for, score

    lang = get_language(cfg.language)
    coverage = translate_all(load_problems(cfg.problems, cfg.limit), cfg.language)
    print(coverage.summary())
    prompts = {t: {"prompt": tr.prompt} for t, tr in coverage.translated.items()}
    model, tokenizer = load_for(cfg, load)
    gen = dataclasses.replace(cfg.generation, stop=list(lang.stop_tokens))
    start = time.monotonic()
    samples = sample_humaneval(model, tokenizer, prompts, gen, stderr_progress("sampled problems"), lang.finish_completion)
    print(f"generated {len(samples)} samples in {time.monotonic() - start:.1f} s", file=sys.stderr)
    samples_path = write_jsonl(default_output(cfg, f"_{cfg.language}"), samples)
    print(f"samples: {samples_path}")
    return score(cfg, sandbox, prompts, samples_path, samples, _executor(cfg, sandbox, coverage), _extra(coverage, []))
