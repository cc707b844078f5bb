"""The Stack v1.2 parquet layout for tests: every provenance column, with its real Arrow type."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

GROUPS = ("max_stars", "max_issues", "max_forks")


def stack_schema() -> pa.Schema:
    fields = [pa.field("hexsha", pa.string()), pa.field("size", pa.int64()), pa.field("ext", pa.string()),
              pa.field("lang", pa.string())]
    for g in GROUPS:
        fields += [pa.field(f"{g}_repo_path", pa.string()), pa.field(f"{g}_repo_name", pa.string()),
                   pa.field(f"{g}_repo_head_hexsha", pa.string()),
                   pa.field(f"{g}_repo_licenses", pa.list_(pa.string())),
                   pa.field(f"{g}_count", pa.int64()),
                   pa.field(f"{g}_repo_{g.split('_')[1]}_event_min_datetime", pa.string()),
                   pa.field(f"{g}_repo_{g.split('_')[1]}_event_max_datetime", pa.string())]
    fields += [pa.field("content", pa.string()), pa.field("avg_line_length", pa.float64()),
               pa.field("max_line_length", pa.int64()), pa.field("alphanum_fraction", pa.float64())]
    return pa.schema(fields)


def stack_row(path: str, content: str, repo: str = "octo/widgets", licenses: list[str] | None = None,
              stars: int | None = 7) -> dict:
    """One row as The Stack has it (licenses default to MIT)."""
    row = {"hexsha": hashlib.sha1(f"{repo}/{path}\0{content}".encode()).hexdigest(),
           "size": len(content.encode()), "ext": path.rsplit(".", 1)[-1], "lang": _lang(path)}
    for g in GROUPS:
        row.update({f"{g}_repo_path": path, f"{g}_repo_name": repo, f"{g}_repo_head_hexsha": "f" * 40,
                    f"{g}_repo_licenses": ["MIT"] if licenses is None else licenses,
                    f"{g}_count": stars if g == "max_stars" else None,
                    f"{g}_repo_{g.split('_')[1]}_event_min_datetime": "2021-03-04T05:06:07.000Z",
                    f"{g}_repo_{g.split('_')[1]}_event_max_datetime": None})
    lines = content.splitlines() or [""]
    row.update(content=content, avg_line_length=sum(map(len, lines)) / len(lines),
               max_line_length=max(map(len, lines)), alphanum_fraction=0.5)
    return row


def _lang(path: str) -> str:
    return {"py": "Python", "js": "JavaScript", "go": "Go"}.get(path.rsplit(".", 1)[-1], "Text")


def write_stack(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=stack_schema()), path)
    return path


def module(variant: int, functions: int = 40) -> str:
    """A distinct, filter-passing Python module per ``variant``."""
    body = "".join(f"def handler_{variant}_{i}(request):\n    return process(request, {i * variant})\n\n"
                   for i in range(functions))
    return f"# module {variant}\nimport os\n\n" + body
