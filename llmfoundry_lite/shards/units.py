"""Fixed units of work: row ranges of the input files, independent of the worker count.

A Parquet file is cut into ranges of ``unit_rows`` rows (from its metadata, without
reading it); a JSONL file or a source directory is one unit. Units are numbered in
input order, each is packed and written on its own, and the merged index lists them
in that order — so which worker ran which unit cannot change a single byte.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from llmfoundry_lite.corpus.readers import (
    ID_COLUMNS,
    LANG_COLUMNS,
    PATH_COLUMNS,
    REPO_COLUMNS,
    InputError,
    InputShard,
    iter_documents,
    list_input_shards,
    normalize,
)


@dataclass(frozen=True)
class Unit:
    """Rows ``[start, stop)`` of one input shard (``stop`` None: the whole shard)."""

    index: int
    shard: InputShard
    start: int = 0
    stop: int | None = None

    @property
    def name(self) -> str:
        return f"unit-{self.index:05d}"


def _parquet_rows(path: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({err})") from None


def plan_units(inputs: list[str], unit_rows: int) -> list[Unit]:
    """The units covering every input document, in input order."""
    units: list[Unit] = []
    for shard in list_input_shards(inputs):
        if shard.kind != "parquet":
            units.append(Unit(len(units), shard))
            continue
        rows = _parquet_rows(shard.path)
        for start in range(0, rows, unit_rows):
            units.append(Unit(len(units), shard, start, min(start + unit_rows, rows)))
    return units


def _parquet_range(path: str, start: int, stop: int, skips: Counter) -> Iterator[dict]:
    """Normalized documents of rows ``[start, stop)``, reading only the row groups that overlap."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    if "content" not in names:
        raise InputError(f"{path}: missing column 'content' (found: {', '.join(sorted(names))})")
    known = {"content", "ext"} | set(PATH_COLUMNS + REPO_COLUMNS + ID_COLUMNS + LANG_COLUMNS)
    wanted = [c for c in names if c in known]
    groups, first_row, offset = [], None, 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if offset < stop and offset + n > start:
            groups.append(g)
            first_row = offset if first_row is None else first_row
        offset += n
    if not groups:
        return
    table = pf.read_row_groups(groups, columns=wanted).slice(start - first_row, stop - start)
    for i, row in enumerate(table.to_pylist()):
        doc = normalize(row, path, start + i, skips)
        if doc is not None:
            yield doc


def iter_unit(unit: Unit, skips: Counter) -> Iterator[dict]:
    """The normalized documents of one unit, in file order."""
    if unit.stop is None:
        return iter_documents(unit.shard, skips)
    return _parquet_range(unit.shard.path, unit.start, unit.stop, skips)
