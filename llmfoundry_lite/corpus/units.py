"""Units of work of the data-prep stages, named by what they were made from; each holds about ``unit_bytes``.

A Parquet file is cut, from its metadata and without reading it, into runs of consecutive
row groups holding at least ``unit_bytes`` of uncompressed data (a stand-in for the token
count: tokens ≈ bytes / 3.5 for code) — a unit never splits a row group, so each group is
read exactly once (pyarrow can start reading only at a row group: N units over one group would
decode it N times). A JSONL file larger than ``unit_bytes`` is cut into byte ranges of about
``unit_bytes``, each starting at a line: the planner reads the file once, streaming, to place
the cuts and count the lines before each (a record's ``row`` is its line number in the file
whatever the cuts: ids and dedup order depend on it). A ``.jsonl.gz`` file cannot be cut (a
gzip stream is read from its start) and a source directory is one unit. Units are listed in
input order and the merged index follows that order, so which worker ran which unit cannot
change a byte; each unit's name hashes its input file's identity (path, size, mtime) and its
rows, so a finished unit is reused exactly when its input is unchanged.

The caller (a Spark driver) only lists the inputs and numbers the units in input order (``number_units``):
the per-file work of planning (checking a schema, identifying a file, reading a footer, scanning a JSONL file
for its cuts) runs in tasks of an engine's map over groups of files (``plan_files``; on Spark, in executors),
each returning an identity and a few cut tuples per file.

Memory per task is bounded whatever the unit's size: ``iter_unit`` streams a unit, Parquet
rows a batch of about ``unit_bytes / BATCHES_PER_UNIT`` at a time (``readers.parquet_batches``;
one huge row group included) and JSONL or source files one record at a time.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from llmfoundry_lite.corpus.identity import file_identity, identity_key
from llmfoundry_lite.corpus.readers import (
    KNOWN_COLUMNS,
    PARQUET_BATCH_BYTES,
    InputError,
    InputShard,
    check_schema,
    iter_documents,
    list_input_shards,
    normalized_batches,
    open_parquet,
    parquet_batches,
    read_jsonl,
)
from llmfoundry_lite.corpus.uris import open_binary

BATCHES_PER_UNIT = 8  # a Parquet unit is read in batches of about unit_bytes / this (Python's copy of a batch
# can take up to 4x its UTF-8 bytes, so a batch this size keeps a task near unit_bytes)
SCAN_BLOCK = 4 << 20  # bytes read at a time when a JSONL file's lines are counted
PLAN_FILES_PER_TASK = 32  # most input files one planning task identifies and cuts (``task_groups``)
PLAN_SPREAD = 64  # planning tasks that a run of few files is spread over before tasks take several files


@dataclass(frozen=True)
class Unit:
    """Rows ``[start, stop)`` of one input file: Parquet row groups ``groups``, or the JSONL lines starting in
    bytes ``byte_range``; ``stop`` None: the whole file (a small or gzipped JSONL file, a source directory)."""

    index: int
    shard: InputShard
    input_key: str
    start: int = 0
    stop: int | None = None
    groups: tuple[int, ...] = ()
    tag: str = ""
    """What else decides the unit's results (a source's filter overrides); enters the name when set."""
    byte_range: tuple[int, int] | None = None
    batch_bytes: int = PARQUET_BATCH_BYTES
    """Uncompressed bytes of Parquet rows read at a time (``unit_bytes / BATCHES_PER_UNIT``); no say in results."""

    @property
    def name(self) -> str:
        made_of = f"{self.input_key}\0{self.start}-{self.stop}"
        if self.byte_range is not None:
            made_of += f"\0bytes {self.byte_range[0]}-{self.byte_range[1]}"
        made_of += f"\0{self.tag}" if self.tag else ""
        return "unit-" + hashlib.sha256(made_of.encode()).hexdigest()[:16]


def _parquet_groups(path: str) -> list[tuple[int, int]]:
    """``(rows, uncompressed bytes)`` of every row group of ``path``."""
    meta = open_parquet(path).metadata
    return [(meta.row_group(g).num_rows, meta.row_group(g).total_byte_size) for g in range(meta.num_row_groups)]


def _parquet_units(shard: InputShard, unit_bytes: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """``(start row, stop row, row groups)`` of each unit of a Parquet file: runs of whole row groups."""
    out: list[tuple[int, int, tuple[int, ...]]] = []
    start, size, groups, offset = 0, 0, [], 0
    for g, (rows, nbytes) in enumerate(_parquet_groups(shard.path)):
        groups.append(g)
        size += nbytes
        offset += rows
        if size >= unit_bytes:
            out.append((start, offset, tuple(groups)))
            start, size, groups = offset, 0, []
    if groups:
        out.append((start, offset, tuple(groups)))
    return out


def _jsonl_cuts(path: str, unit_bytes: int) -> tuple[list[tuple[int, int]], int, int]:
    """Where a JSONL file is cut: ``(byte offset, line number)`` of the first line of each range (the first line
    starting ``unit_bytes`` or more after the range before began), the file's size and its number of lines."""
    cuts = [(0, 0)]
    pos = newlines = 0
    last = b"\n"
    with open_binary(path) as fh:
        for block in iter(lambda: fh.read(SCAN_BLOCK), b""):
            counted = 0  # block[:counted] is in ``newlines``
            i = cuts[-1][0] + unit_bytes - 1 - pos  # a cut follows the first newline at or after this index
            while i < len(block):
                j = block.find(b"\n", max(i, 0))
                if j < 0:
                    break
                newlines += block.count(b"\n", counted, j + 1)
                counted = j + 1
                cuts.append((pos + j + 1, newlines))
                i = j + unit_bytes
            newlines += block.count(b"\n", counted)
            pos += len(block)
            last = block[-1:]
    if cuts[-1][0] == pos:  # the file ends with the newline that made the last cut: nothing after it
        cuts.pop()
    return cuts, pos, newlines + (last != b"\n")


def _jsonl_units(shard: InputShard, unit_bytes: int) -> list[tuple[int, int | None, tuple[int, int] | None]]:
    """``(start row, stop row, byte range)`` of each unit of a JSONL file; one whole-file unit unless it is cut."""
    if shard.path.endswith(".gz"):
        return [(0, None, None)]
    cuts, size, lines = _jsonl_cuts(shard.path, unit_bytes)
    if len(cuts) == 1:
        return [(0, None, None)]
    ends = [*cuts[1:], (size, lines)]
    return [(row, stop_row, (byte, stop_byte)) for (byte, row), (stop_byte, stop_row) in zip(cuts, ends, strict=True)]


Cut = tuple[int, int | None, tuple[int, ...], tuple[int, int] | None]
"""One unit of a file before it is numbered: start row, stop row, Parquet row groups, JSONL byte range."""
MapFn = Callable[[Callable, list[tuple]], list]
"""An engine's map: ``map_fn(fn, tasks)`` is ``[fn(*task) for task in tasks]``, run anywhere, in task order."""


@dataclass(frozen=True)
class PlannedFile:
    """One input file as its planning task found it: its identity and the cuts of its units."""

    shard: InputShard
    identity: dict
    cuts: tuple[Cut, ...]


def task_groups(items: list, most: int, spread: int = PLAN_SPREAD) -> list[list]:
    """``items`` in consecutive groups, one task each: one item per task while there are at most ``spread``
    items, then as many per task as spread them over ``spread`` tasks, never more than ``most``: tiny files do
    not each cost a task, and past ``spread * most`` items the tasks grow in number, not in size."""
    size = min(most, max(1, -(-len(items) // spread)))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _cuts(shard: InputShard, identity: dict, unit_bytes: int) -> list[Cut]:
    if shard.kind == "parquet":
        return [(start, stop, groups, None) for start, stop, groups in _parquet_units(shard, unit_bytes)]
    if shard.kind == "jsonl" and identity["size"] > unit_bytes:
        return [(start, stop, (), byte_range) for start, stop, byte_range in _jsonl_units(shard, unit_bytes)]
    return [(0, None, (), None)]


def _plan_group(shards: list[InputShard], unit_bytes: int, check: bool,
                known: list[dict | None]) -> list[tuple[dict, list[Cut]]] | InputError:
    """One planning task: per file, its schema check (``check``), identity (unless ``known``) and cuts.

    An unusable input comes back as its ``InputError`` (the driver raises it as it is, not wrapped in the
    engine's task failure); any other error fails the task."""
    out = []
    try:
        for shard, identity in zip(shards, known, strict=True):
            if check:
                check_schema(shard)
            identity = identity or file_identity(shard)
            out.append((identity, _cuts(shard, identity, unit_bytes)))
    except InputError as err:
        return err
    return out


def inline_map(fn: Callable, tasks: list[tuple]) -> list:
    """The ``MapFn`` that runs every task here, in order (where no engine's map is given)."""
    return [fn(*task) for task in tasks]


def plan_files(shards: list[InputShard], unit_bytes: int, map_fn: MapFn | None = None, check: bool = False,
               identities: dict[str, dict] | None = None) -> list[PlannedFile]:
    """Identity and unit cuts of every file of ``shards`` (in order), worked out in tasks of ``map_fn`` over
    groups of files (``task_groups``; in this process without one): the caller holds only the small results.

    ``check``: ``check_schema`` each file first (an unusable one raises its ``InputError`` here, the first in
    input order). ``identities``: ``file_identity`` by path, when the caller already has them."""
    groups = task_groups(shards, PLAN_FILES_PER_TASK)
    tasks = [(group, unit_bytes, check, [identities[s.path] if identities is not None else None for s in group])
             for group in groups]
    files: list[PlannedFile] = []
    for group, result in zip(groups, (map_fn or inline_map)(_plan_group, tasks), strict=True):
        if isinstance(result, InputError):
            raise result
        files.extend(PlannedFile(s, identity, tuple(cuts)) for s, (identity, cuts) in zip(group, result, strict=True))
    return files


def number_units(files: list[PlannedFile], unit_bytes: int, first: int = 0, tag: str = "") -> list[Unit]:
    """The units of planned ``files`` in input order, numbered from ``first``; ``tag``: ``Unit.tag``."""
    batch_bytes = max(1, unit_bytes // BATCHES_PER_UNIT)
    units: list[Unit] = []
    for f in files:
        key = identity_key(f.identity)
        for start, stop, groups, byte_range in f.cuts:
            units.append(Unit(first + len(units), f.shard, key, start, stop, groups, tag, byte_range,
                              batch_bytes if f.shard.kind == "parquet" else PARQUET_BATCH_BYTES))
    return units


def plan_units(inputs: list[str], unit_bytes: int, identities: dict[str, dict] | None = None,
               layout: str = "auto", map_fn: MapFn | None = None) -> list[Unit]:
    """The units covering every input document, in input order.

    Here the inputs are only listed and the units numbered: reading footers, scanning JSONL files and
    identifying files is per-file work, run in tasks of ``map_fn`` (an engine's map: ``SparkScope.map`` puts it
    on executors) over groups of files, or in this process without one (``plan_files``). ``identities``:
    ``file_identity`` by shard path when the caller already has them (a source directory's identity walks its
    whole tree; computing it twice per run is waste). ``layout``: how a directory input is read
    (``list_input_shards``). A JSONL file is read only when it is larger than ``unit_bytes`` (to cut it); a
    Parquet file's footer is read, a source tree not at all (but for its identity)."""
    return number_units(plan_files(list_input_shards(inputs, layout), unit_bytes, map_fn, identities=identities),
                        unit_bytes)


def _parquet_groups_docs(unit: Unit, skips: Counter, extras: frozenset[str]) -> Iterator[dict]:
    """Normalized documents of the unit's row groups (``row`` counts from the file's first row), streamed."""
    path = unit.shard.path
    pf = open_parquet(path)
    names = pf.schema_arrow.names
    if "content" not in names:
        raise InputError(f"{path}: missing column 'content' (found: {', '.join(sorted(names))})")
    meta = pf.metadata
    rows = sum(meta.row_group(g).num_rows for g in unit.groups if g < meta.num_row_groups)
    if max(unit.groups) >= meta.num_row_groups or rows != unit.stop - unit.start:
        raise InputError(f"{path}: row groups {unit.groups} hold {rows} rows, planned "
                         f"{unit.stop - unit.start}; the file changed since the units were planned")
    columns = [c for c in names if c in KNOWN_COLUMNS or c in extras]
    yield from normalized_batches(parquet_batches(pf, list(unit.groups), columns, unit.batch_bytes), path, unit.start,
                                  skips, extras)


def iter_unit(unit: Unit, skips: Counter, extras: frozenset[str] = frozenset()) -> Iterator[dict]:
    """The normalized documents of one unit, in file order; ``extras``: input columns to carry in ``extra``."""
    if unit.byte_range is not None:
        return read_jsonl(unit.shard.path, skips, extras, unit.byte_range, unit.start)
    if unit.stop is None:
        return iter_documents(unit.shard, skips, extras=extras)
    return _parquet_groups_docs(unit, skips, extras)


def unit_rows(unit: Unit) -> int | None:
    """Records the unit's reader accounts for (documents + skips): a Parquet unit's rows; None for JSONL (blank
    lines are passed over uncounted) and source directories: only their readers know."""
    return None if unit.shard.kind != "parquet" else unit.stop - unit.start
