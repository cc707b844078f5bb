"""A small multi-file Stack-format corpus and a shard config builder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmfoundry_lite.shards.config import ShardsConfig

ASSET_TOKENIZER = Path(__file__).resolve().parents[1] / "assets" / "tokenizer"


def make_docs(n: int, offset: int = 0) -> list[dict]:
    """Varied small documents: Python, C, shell; some longer than a sample, some with unusual text."""
    docs = []
    for i in range(offset, offset + n):
        kind = i % 4
        if kind == 0:
            body = f"def f_{i}(x):\n    return x * {i}\n" * (1 + i % 5)
        elif kind == 1:
            body = f"int g{i}(void) {{\r\n\treturn {i};\r\n}}\r\n"
        elif kind == 2:
            body = f"#!/bin/sh\necho 'caf\u00e9 \U0001f600 {i}' <fim_prefix>\n" + "# pad\n" * (i % 13)
        else:
            body = "x = " + "long_name_" * (20 + i) + f"{i}\n"
        lang = ("Python", "C", "Shell", "Python")[kind]
        docs.append({"id": f"doc-{i}", "content": body, "path": f"f{i}.x", "lang": lang})
    return docs


@pytest.fixture()
def corpus_dir(tmp_path: Path) -> Path:
    """Two Parquet files (several row groups each) and one JSONL file: 46 documents."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "corpus"
    root.mkdir()
    pq.write_table(pa.Table.from_pylist(make_docs(20, 0)), root / "a.parquet", row_group_size=6)
    pq.write_table(pa.Table.from_pylist(make_docs(17, 20)), root / "b.parquet", row_group_size=4)
    (root / "c.jsonl").write_text("".join(json.dumps(d) + "\n" for d in make_docs(9, 37)))
    return root


def shard_cfg(corpus: Path, out: Path, **kw) -> ShardsConfig:
    base = {"max_seq_len": 64, "val_fraction": 0.25, "unit_bytes": 1, "progress": False}
    return ShardsConfig(input=[str(corpus)], tokenizer=str(ASSET_TOKENIZER), output=str(out), **{**base, **kw})


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
