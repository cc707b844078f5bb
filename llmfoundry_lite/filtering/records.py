"""Layouts of the filter stage's files and the writer that puts them in place atomically.

- pass-1 records (``work/pass1/<unit>.parquet``): one row per admitted document with its input
  file's key, its decision, line statistics, PII counts and normalized-content hash — no content;
  pass 3 re-reads the input for that. The key is in the data so that pass 2 ties every row to its
  file by value: a file *name* as Spark reports it (``input_file_name()``) is not the name Python
  writes (percent-encoding, symlinks), and a join on those strings silently matched nothing.
- ``kept/`` and ``rejected/``: the normalized Stack columns, the computed columns, and every
  other input column unchanged (``provenance``): The Stack's licenses, stars, head sha, dates,
  issue/fork groups, or any column a user's own Parquet brings, with its Arrow type. JSONL
  has no schema, so pass 1 infers one per file (``jsonl_extra_types``): a key whose values are
  all strings / ints / floats / bools keeps that type; any other key is written as its JSON text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmfoundry_lite.corpus.readers import NORMALIZED
from llmfoundry_lite.corpus.uris import parquet_source
from llmfoundry_lite.spark_session import attempt_tmp

if TYPE_CHECKING:
    import pyarrow as pa

PII_TYPES = ("email", "ip_address", "key")
STATS_COLUMNS = ("max_line_length", "mean_line_length", "alphanum_fraction")
COMPUTED = frozenset({"reason", "detail", *STATS_COLUMNS, *(f"pii_{t}" for t in PII_TYPES), "content_hash",
                      "dup_cluster", "dup_cluster_size"})
FLUSH_BYTES = 64 << 20  # also flush a write batch once it holds this much content
JSON_TEXT = "json"  # inferred JSONL type of keys with nested or mixed values


def _stats_fields() -> list:
    import pyarrow as pa

    return [pa.field("max_line_length", pa.int64()), pa.field("mean_line_length", pa.float64()),
            pa.field("alphanum_fraction", pa.float64()), *[pa.field(f"pii_{t}", pa.int64()) for t in PII_TYPES],
            pa.field("content_hash", pa.string())]


PASS1_FORMAT = 2  # pass-1 files of another format (1: no ``key`` column) are redone, not read


def pass1_schema() -> pa.Schema:
    """Decisions of pass 1, keyed by ``(key, row)``: the input file's identity key and the record's index in it."""
    import pyarrow as pa

    return pa.schema([pa.field("row", pa.int64()), pa.field("key", pa.string()), pa.field("id", pa.string()),
                      pa.field("lang", pa.string()),
                      pa.field("size", pa.int64()), pa.field("reason", pa.string()), pa.field("detail", pa.string()),
                      *_stats_fields()])


def output_schema(rejected: bool, extras: list[pa.Field]) -> pa.Schema:
    """``kept/`` (``rejected=False``) or ``rejected/`` files: Stack columns, decisions, provenance."""
    import pyarrow as pa

    fields = [pa.field(c, pa.int64() if c == "size" else pa.string()) for c in NORMALIZED]
    if rejected:
        fields += [pa.field("reason", pa.string()), pa.field("detail", pa.string())]
    fields += [*_stats_fields(), pa.field("dup_cluster", pa.string()), pa.field("dup_cluster_size", pa.int64())]
    return pa.schema(fields + list(extras))


def parquet_extra_fields(path: str) -> list[pa.Field]:
    """The input columns a Parquet file carries through, with their Arrow types."""
    import pyarrow.parquet as pq

    schema = pq.ParquetFile(parquet_source(path)).schema_arrow
    return [f for f in schema if f.name not in NORMALIZED and f.name not in COMPUTED]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    return "string" if isinstance(value, str) else JSON_TEXT


def _join(old: str, new: str) -> str:
    """The kind that holds values of kinds ``old`` and ``new`` ("null": none seen); order does not matter."""
    if old == "null" or old == new:
        return new
    if new == "null":
        return old
    return "float64" if {old, new} == {"int64", "float64"} else JSON_TEXT


def merge_kinds(kinds: dict[str, str], extra: dict[str, Any]) -> None:
    """Fold one JSONL row's extra values into the per-key type inference ``kinds``."""
    for key, value in extra.items():
        if key in COMPUTED:
            continue
        kinds[key] = _join(kinds.get(key, "null"), "null" if value is None else _kind(value))


def merge_kind_maps(maps: list[dict[str, str]]) -> dict[str, str]:
    """The kinds of a whole JSONL file from those of its units, in file order: what ``merge_kinds`` gives
    folding every row of the file (a file cut into byte ranges writes the same columns in every part)."""
    merged: dict[str, str] = {}
    for kinds in maps:
        for key, kind in kinds.items():
            merged[key] = _join(merged.get(key, "null"), kind)
    return merged


def jsonl_extra_fields(kinds: dict[str, str]) -> list[pa.Field]:
    """Arrow fields for the inferred JSONL kinds (all-null and JSON-text keys become strings)."""
    import pyarrow as pa

    types = {"bool": pa.bool_(), "int64": pa.int64(), "float64": pa.float64()}
    return [pa.field(k, types.get(v, pa.string())) for k, v in kinds.items()]


def jsonl_value(value: Any, kind: str) -> Any:
    """One JSONL extra value as written under its inferred kind."""
    if value is None:
        return None
    if kind == JSON_TEXT:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if kind == "float64":
        return float(value)
    return value


class BatchWriter:
    """Parquet writer that buffers rows in a file of this task attempt's own and renames it into place on
    ``close`` (``spark_session.attempt_tmp``: a speculative or retried attempt never writes into it)."""

    def __init__(self, path: Path, schema: pa.Schema, batch_rows: int) -> None:
        import pyarrow.parquet as pq

        self.path, self.schema, self.batch_rows = path, schema, batch_rows
        self.tmp = attempt_tmp(path)
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        self.rows: list[dict] = []
        self.bytes = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.bytes += len(row.get("content") or "")
        if len(self.rows) >= self.batch_rows or self.bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
        self.rows, self.bytes = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()
        os.replace(self.tmp, self.path)


def write_npy(path: Path, array: Any) -> None:
    """``numpy.save`` to ``path``, atomically and attempt-safe like ``write_json``."""
    import numpy as np

    tmp = attempt_tmp(path)
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` atomically (a reader sees the old file or the whole new one; attempts never share a tmp)."""
    tmp = attempt_tmp(path)
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
