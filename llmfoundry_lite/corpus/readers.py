"""Read Stack-format documents from Parquet, JSONL(.gz) or plain source trees.

Every reader yields the same normalized rows: ``id, content, path, lang,
repository_name, size, ext``, plus ``row`` (the record's index in its file, counting
skipped records, so a second read lines up with the first) and ``licenses`` (the
repository's license list, None when the input has none). Column names of the real The
Stack dumps are mapped (``max_stars_repo_path`` → ``path``, ``max_stars_repo_name`` →
``repository_name``, ``hexsha`` → ``id``, ``max_stars_repo_licenses`` → ``licenses``).
With ``extras=True`` each row also carries ``extra``: every other input column, unchanged,
so provenance (stars, head sha, dates, issue/fork groups) can be written back out. An input
that cannot be used at all (wrong schema, corrupt file) raises ``InputError`` naming the
file; a single bad record (a JSONL line that is not JSON, null or non-UTF-8 content) is
skipped and counted in ``skips``. Every reader streams: Parquet a batch of rows at a time
(``parquet_batches``), JSONL a line at a time (``read_jsonl``, also over a byte range of a file),
a source tree a file at a time.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from llmfoundry_lite.corpus.languages import extension_of, language_from_path
from llmfoundry_lite.corpus.sources import BINARY_PROBE_BYTES, decode_source, walk_directory
from llmfoundry_lite.corpus.uris import local_path, open_binary, parquet_source, remote_fs

if TYPE_CHECKING:
    import pyarrow.parquet as pq

PATH_COLUMNS = ("path", "max_stars_repo_path", "max_issues_repo_path", "max_forks_repo_path")
REPO_COLUMNS = ("repository_name", "max_stars_repo_name", "repo_name", "max_issues_repo_name")
ID_COLUMNS = ("id", "hexsha")
LANG_COLUMNS = ("lang", "language")
LICENSE_COLUMNS = ("max_stars_repo_licenses", "licenses", "license", "max_issues_repo_licenses",
                   "max_forks_repo_licenses")
# The normalized columns: an input column of one of these names is replaced, never carried as an extra.
NORMALIZED = ("id", "content", "path", "lang", "repository_name", "size", "ext")
ALL_EXTRAS = frozenset({"*"})  # ``extras=ALL_EXTRAS``: carry every non-normalized column of each row
TABLE_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")
LAYOUTS = ("auto", "table", "source")  # how a directory input is read: see ``list_input_shards``
# Files that describe the tables beside them (``_tables_of``): dataset cards (a downloaded Hugging Face dataset
# has README.md), our local corpus's manifest (``corpus/local_stack.py``), Hugging Face's dataset info.
DATASET_METADATA = ("readme*", "license*", "manifest.json", "dataset_info.json", "dataset_infos.json")


class InputError(ValueError):
    """An input file that cannot be used at all; the message names the file."""


@dataclass(frozen=True)
class InputShard:
    """One unit of input: a Parquet file, a JSONL(.gz) file or a source directory."""

    path: str
    kind: str  # "parquet" | "jsonl" | "source_dir"


def _is_table(name: str) -> bool:
    return name.endswith(TABLE_SUFFIXES)


def _ignored(name: str) -> bool:
    """Hidden files and job markers (Hadoop's rule: ``.part-0.crc``, ``_SUCCESS``, ``_temporary/``, ``_delta_log/``):
    never read as tables and no say in a directory's layout."""
    return name.startswith((".", "_"))


def _local_files(root: Path) -> Iterator[str]:
    """Every file below ``root`` but the ``_ignored`` ones (and those under ignored directories), sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d))
        yield from (os.path.join(dirpath, f) for f in sorted(filenames) if not _ignored(f))


def _tables_of(files: Iterator[str], layout: str) -> list[str]:
    """The tables among a directory's ``files`` when it is read as a table directory; [] when it is a source tree.

    ``auto``: a table directory when it holds tables and nothing else but files that describe them
    (``DATASET_METADATA``); one other file makes it a source tree, whose tables are then files of the tree like
    any other (read or not by the language rules). ``table``: its tables, whatever else it holds."""
    tables = []
    for f in files:
        name = os.path.basename(f)
        if _is_table(name):
            tables.append(f)
        elif layout == "auto" and not any(fnmatch.fnmatchcase(name.lower(), m) for m in DATASET_METADATA):
            return []
    return sorted(tables)


def list_input_shards(paths: list[str], layout: str = "auto") -> list[InputShard]:
    """Expand user-given paths into sorted input shards.

    A file is a table. A directory is read as ``layout`` says (``LAYOUTS``): ``auto`` makes a directory that
    holds only Parquet/JSONL files (The Stack's ``data/<lang>/*.parquet`` layout; ``_tables_of`` says what
    else it may hold) contribute each of them, and any other directory — a repository with a ``.jsonl``
    fixture included — a tree of source files; ``table`` and ``source`` say which. Paths may be URIs
    (``corpus/uris.py``); remote ones must name tables, not source trees.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown input layout {layout!r}; choose from {list(LAYOUTS)}")
    shards: list[InputShard] = []
    for raw in paths:
        local = local_path(raw)
        if local is None:
            shards.extend(_remote_shards(raw, layout))
            continue
        p = Path(local)
        if not p.exists():
            raise InputError(f"input not found: {raw}")
        if p.is_file():
            if not _is_table(p.name):
                raise InputError(f"{raw}: not a Parquet or JSONL(.gz) file; pass its directory to read source files")
            shards.append(InputShard(str(p), _kind(p.name)))
            continue
        tables = [] if layout == "source" else _tables_of(_local_files(p), layout)
        if layout == "table" and not tables:
            raise InputError(f"{raw}: layout=table, but no Parquet or JSONL(.gz) files below it")
        shards.extend(InputShard(t, _kind(t)) for t in tables)
        if not tables:
            shards.append(InputShard(str(p), "source_dir"))
    return shards


def _kind(name: str) -> str:
    return "parquet" if name.endswith(".parquet") else "jsonl"


def _remote_shards(uri: str, layout: str) -> list[InputShard]:
    """The tables at a remote URI (one file, or every table below a prefix that ``_tables_of`` calls a table
    directory), as full URIs, sorted."""
    if layout == "source":
        raise InputError(f"{uri}: layout=source, but source trees must be local")
    fs, root = remote_fs(uri)
    if not fs.exists(root):
        raise InputError(f"input not found: {uri}")
    if fs.isfile(root):
        if not _is_table(root):
            raise InputError(f"{uri}: not a Parquet or JSONL(.gz) file")
        return [InputShard(uri, _kind(root))]
    below = (f for f in fs.find(root) if not any(map(_ignored, f[len(root):].strip("/").split("/"))))
    tables = _tables_of(below, layout)
    if not tables:
        raise InputError(f"{uri}: no Parquet or JSONL(.gz) files below it, or files of other kinds beside them "
                         f"(a source tree; source trees must be local, and layout=table reads only the tables)")
    return [InputShard(fs.unstrip_protocol(t), _kind(t)) for t in tables]


def _first(row: dict, names: tuple[str, ...]) -> object | None:
    for n in names:
        v = row.get(n)
        if v is not None and v != "":
            return v
    return None


def _text_problem(content: str) -> str | None:
    """Why already-decoded text is not admitted (The Stack's rules as in ``decode_source``), or None."""
    if "\x00" in content[:BINARY_PROBE_BYTES]:
        return "binary"
    if not content or content.isspace():
        return "empty"
    try:  # a JSON "\ud800" escape decodes to a lone surrogate that no UTF-8 writer accepts
        content.encode("utf-8")
    except UnicodeEncodeError:
        return "non_utf8"
    return None


def _licenses(row: dict) -> list[str] | None:
    value = _first(row, LICENSE_COLUMNS)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if v] or None


def normalize(row: dict, origin: str, index: int, skips: Counter, extras: frozenset[str] = frozenset()) -> dict | None:
    """Map one raw record to the canonical columns (+ ``extra``: the ``extras`` columns), or count why it is unusable."""
    content = row.get("content")
    if content is None:
        skips["null_content"] += 1
        return None
    if isinstance(content, bytes):
        content, reason = decode_source(content)
        if reason is not None:
            skips[reason] += 1
            return None
    elif not isinstance(content, str):
        skips["content_not_text"] += 1
        return None
    reason = _text_problem(content)
    if reason is not None:
        skips[reason] += 1
        return None
    path = str(_first(row, PATH_COLUMNS) or "")
    lang = _first(row, LANG_COLUMNS) or language_from_path(path) or "unknown"
    doc_id = _first(row, ID_COLUMNS) or hashlib.sha1(f"{origin}\0{index}".encode()).hexdigest()
    doc = {
        "id": str(doc_id),
        "content": content,
        "path": path,
        "lang": str(lang),
        "repository_name": str(_first(row, REPO_COLUMNS) or ""),
        "size": len(content.encode("utf-8")),
        "ext": str(row.get("ext") or extension_of(path)),
        "row": index,
        "licenses": _licenses(row),
    }
    if ALL_EXTRAS <= extras:  # JSONL: the columns are only known row by row
        doc["extra"] = {k: v for k, v in row.items() if k not in NORMALIZED}
    elif extras:
        doc["extra"] = {k: row.get(k) for k in extras}
    return doc


def extra_columns(columns: list[str], computed: frozenset[str] = frozenset()) -> list[str]:
    """Input columns carried through unchanged: all but the normalized and the ``computed`` ones."""
    return [c for c in columns if c not in NORMALIZED and c not in computed]


def _check_columns(origin: str, columns: list[str]) -> None:
    if "content" not in columns:
        raise InputError(f"{origin}: missing column 'content' (found: {', '.join(sorted(columns)) or 'none'})")
    if not any(c in columns for c in PATH_COLUMNS + LANG_COLUMNS):
        raise InputError(f"{origin}: needs a 'path' or 'lang' column besides 'content' (found: {', '.join(sorted(columns))})")


KNOWN_COLUMNS = frozenset({"content", "ext", *PATH_COLUMNS, *REPO_COLUMNS, *ID_COLUMNS, *LANG_COLUMNS,
                           *LICENSE_COLUMNS})


# Bytes read from a Parquet file at a time. pyarrow's defaults read every requested row group's column chunks
# whole before decoding (``pre_buffer``), and without a buffer size each column chunk whole: a 200 MB row group
# would be in memory at once. Streamed, a reader holds one page (the writer's choice, ~1 MiB by default) per column.
PARQUET_READ_BUFFER = 1 << 20
PARQUET_BATCH_BYTES = 8 << 20  # uncompressed bytes per batch of ``parquet_batches`` unless the caller says


def open_parquet(path: str) -> pq.ParquetFile:
    """``path`` opened to be streamed (``PARQUET_READ_BUFFER``); ``InputError`` when it is not Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(parquet_source(path), pre_buffer=False, buffer_size=PARQUET_READ_BUFFER)
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({err})") from None


def parquet_batches(pf: pq.ParquetFile, groups: list[int], columns: list[str],
                    batch_bytes: int = PARQUET_BATCH_BYTES) -> Iterator[list[dict]]:
    """The rows of row groups ``groups``, in order, a batch of about ``batch_bytes`` uncompressed at a time.

    Rows per batch follow each group's bytes per row (its footer; at least one row), so a batch of large
    documents holds fewer of them and a row group of any size is never materialized whole."""
    meta = pf.metadata
    for g in groups:
        group = meta.row_group(g)
        rows = max(1, batch_bytes * group.num_rows // max(group.total_byte_size, 1))
        # One thread: a task's parallelism is the other tasks; decoder threads only add per-thread heaps (measured:
        # +60 MB resident for a 200 MB row group, against 18 MiB that Arrow's pool ever held).
        for batch in pf.iter_batches(batch_size=rows, row_groups=[g], columns=columns, use_threads=False):
            yield batch.to_pylist()


def _read_parquet(path: str, skips: Counter, extras: frozenset[str]) -> Iterator[dict]:
    pf = open_parquet(path)
    names = pf.schema_arrow.names
    _check_columns(path, names)
    wanted = names if ALL_EXTRAS <= extras else [c for c in names if c in KNOWN_COLUMNS or c in extras]
    yield from normalized_batches(parquet_batches(pf, list(range(pf.metadata.num_row_groups)), wanted), path, 0,
                                  skips, extras)


def normalized_batches(batches: Iterator[list[dict]], path: str, first_row: int, skips: Counter,
                       extras: frozenset[str]) -> Iterator[dict]:
    """The normalized documents of Parquet row batches whose first row is row ``first_row`` of ``path``; a
    corrupt or truncated file is an ``InputError`` naming the row it stopped after."""
    import pyarrow as pa

    index = first_row
    try:
        for batch in batches:
            for row in batch:
                doc = normalize(row, path, index, skips, extras)
                index += 1
                if doc is not None:
                    yield doc
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{path}: corrupt or truncated Parquet after row {index} ({err})") from None


def _jsonl_row(raw: bytes, skips: Counter) -> dict | None:
    """One JSONL line as a dict, or None after counting why it is unusable."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        skips["non_utf8"] += 1
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        skips["bad_json_line"] += 1
        return None
    if not isinstance(row, dict):
        skips["json_not_object"] += 1
        return None
    return row


def _lines_starting_in(fh: IO[bytes], start: int, stop: int) -> Iterator[bytes]:
    """The lines of ``fh`` that start at a byte offset in ``[start, stop)`` (Hadoop's TextInputFormat rule: the
    line under way at ``start`` belongs to the range before it, so ranges cut anywhere share no line)."""
    if start:
        fh.seek(start - 1)
        fh.readline()  # ends at the first newline at or after start - 1: the next line starts at or after start
    pos = fh.tell()
    while pos < stop:
        raw = fh.readline()
        if not raw:
            return
        pos += len(raw)
        yield raw


def read_jsonl(path: str, skips: Counter, extras: frozenset[str] = frozenset(),
               byte_range: tuple[int, int] | None = None, first_row: int = 0) -> Iterator[dict]:
    """Normalized documents of a JSONL(.gz) file, streamed line by line; ``row`` is the line's index in the file.

    ``byte_range``: only the lines starting in those bytes of an uncompressed file (``_lines_starting_in``),
    the first of them being line ``first_row`` of the file (``corpus/units.py`` counts them)."""
    # Lines are read as bytes and decoded one by one: one bad byte costs one record, not the file.
    seen_content = bool(byte_range and byte_range[0])  # the file's first object decides its schema: a later
    index = first_row  # range holds no first object; one of its records without content is skipped and counted
    try:
        with open_binary(path) as raw_fh, (gzip.open(raw_fh, "rb") if path.endswith(".gz") else raw_fh) as fh:
            lines = fh if byte_range is None else _lines_starting_in(fh, *byte_range)
            for index, raw in enumerate(lines, first_row):
                if not raw.strip():
                    continue
                row = _jsonl_row(raw, skips)
                if row is None:
                    continue
                if not seen_content:
                    _check_columns(f"{path} line {index + 1}", list(row))
                    seen_content = True
                doc = normalize(row, path, index, skips, extras)
                if doc is not None:
                    yield doc
    except (OSError, EOFError) as err:
        raise InputError(f"{path}: unreadable JSONL near line {index + 1} ({type(err).__name__}: {err})") from None


def _read_source_dir(root: str, skips: Counter) -> Iterator[dict]:
    label = Path(root).resolve().name
    for index, cand in enumerate(walk_directory(root, label, frozenset(), skips)):
        text, reason = decode_source(cand.read_bytes())
        if reason is not None:
            skips[reason] += 1
            continue
        yield {**cand.stack_row(text, cand.relpath, label), "row": index, "licenses": None}


def check_schema(shard: InputShard) -> None:
    """Fail fast with ``InputError`` if ``shard`` is unreadable or lacks the needed columns.

    Parquet: reads the footer only. JSONL: reads up to the first JSON object. Source
    directories always qualify. Lets a pipeline refuse a bad input before doing any work.
    """
    if shard.kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            names = pq.ParquetFile(parquet_source(shard.path)).schema_arrow.names
        except (pa.ArrowException, OSError) as err:
            raise InputError(f"{shard.path}: not a readable Parquet file ({err})") from None
        _check_columns(shard.path, names)
    elif shard.kind == "jsonl":
        for _ in read_jsonl(shard.path, Counter()):
            return


def iter_documents(shard: InputShard, skips: Counter, extras: frozenset[str] = frozenset()) -> Iterator[dict]:
    """Normalized documents of one input shard, in file order; ``extras``: input columns to carry in ``extra``."""
    if shard.kind == "parquet":
        return _read_parquet(shard.path, skips, extras)
    if shard.kind == "jsonl":
        return read_jsonl(shard.path, skips, extras)
    if shard.kind == "source_dir":
        return _read_source_dir(shard.path, skips)
    raise ValueError(f"unknown input kind {shard.kind!r}")
