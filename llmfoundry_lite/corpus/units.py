"""Units of work of the filter and shard stages: whole row groups of the input files, named by what they were made from.

A Parquet file is cut, from its metadata and without reading it, into runs of consecutive
row groups holding at least ``unit_bytes`` of uncompressed data (a stand-in for the token
count: tokens ≈ bytes / 3.5 for code) — a unit never splits a row group, so each group is
read exactly once. A JSONL file or a source directory is one unit. Units are listed in input
order and the merged index follows that order, so which worker ran which unit cannot change
a byte; each unit's name hashes its input file's identity (path, size, mtime) and its rows,
so a finished unit is reused exactly when its input is unchanged.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from llmfoundry_lite.corpus.identity import file_identity, identity_key
from llmfoundry_lite.corpus.readers import (
    KNOWN_COLUMNS,
    InputError,
    InputShard,
    iter_documents,
    list_input_shards,
    normalize,
)
from llmfoundry_lite.corpus.uris import parquet_source


@dataclass(frozen=True)
class Unit:
    """Row groups ``groups`` (rows ``[start, stop)``) of one input file; ``stop`` None: the whole file."""

    index: int
    shard: InputShard
    input_key: str
    start: int = 0
    stop: int | None = None
    groups: tuple[int, ...] = ()
    tag: str = ""
    """What else decides the unit's results (a source's filter overrides); enters the name when set."""

    @property
    def name(self) -> str:
        made_of = f"{self.input_key}\0{self.start}-{self.stop}" + (f"\0{self.tag}" if self.tag else "")
        return "unit-" + hashlib.sha256(made_of.encode()).hexdigest()[:16]


def _parquet_groups(path: str) -> list[tuple[int, int]]:
    """``(rows, uncompressed bytes)`` of every row group of ``path``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(parquet_source(path)).metadata
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({err})") from None
    return [(meta.row_group(g).num_rows, meta.row_group(g).total_byte_size) for g in range(meta.num_row_groups)]


def plan_units(inputs: list[str], unit_bytes: int, identities: dict[str, dict] | None = None) -> list[Unit]:
    """The units covering every input document, in input order.

    ``identities``: ``file_identity`` by shard path when the caller already has them (a source
    directory's identity walks its whole tree; computing it twice per run is waste)."""
    units: list[Unit] = []
    for shard in list_input_shards(inputs):
        identity = identities[shard.path] if identities is not None else file_identity(shard)
        key = identity_key(identity)
        if shard.kind != "parquet":
            units.append(Unit(len(units), shard, key))
            continue
        start, size, groups = 0, 0, []
        offset = 0
        for g, (rows, nbytes) in enumerate(_parquet_groups(shard.path)):
            groups.append(g)
            size += nbytes
            offset += rows
            if size >= unit_bytes:
                units.append(Unit(len(units), shard, key, start, offset, tuple(groups)))
                start, size, groups = offset, 0, []
        if groups:
            units.append(Unit(len(units), shard, key, start, offset, tuple(groups)))
    return units


def _parquet_groups_docs(unit: Unit, skips: Counter, extras: frozenset[str]) -> Iterator[dict]:
    """Normalized documents of the unit's row groups (``row`` counts from the file's first row)."""
    import pyarrow.parquet as pq

    path = unit.shard.path
    pf = pq.ParquetFile(parquet_source(path))
    names = pf.schema_arrow.names
    if "content" not in names:
        raise InputError(f"{path}: missing column 'content' (found: {', '.join(sorted(names))})")
    table = pf.read_row_groups(list(unit.groups), columns=[c for c in names if c in KNOWN_COLUMNS or c in extras])
    if table.num_rows != unit.stop - unit.start:
        raise InputError(f"{path}: row groups {unit.groups} hold {table.num_rows} rows, planned "
                         f"{unit.stop - unit.start}; the file changed since the units were planned")
    for i, row in enumerate(table.to_pylist()):
        doc = normalize(row, path, unit.start + i, skips, extras)
        if doc is not None:
            yield doc


def iter_unit(unit: Unit, skips: Counter, extras: frozenset[str] = frozenset()) -> Iterator[dict]:
    """The normalized documents of one unit, in file order; ``extras``: input columns to carry in ``extra``."""
    if unit.stop is None:
        return iter_documents(unit.shard, skips, extras=extras)
    return _parquet_groups_docs(unit, skips, extras)


def unit_rows(unit: Unit) -> int | None:
    """Rows the unit covers (None for a JSONL file or source directory: only its reader knows)."""
    return None if unit.stop is None else unit.stop - unit.start
