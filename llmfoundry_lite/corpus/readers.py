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
skipped and counted in ``skips``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llmfoundry_lite.corpus.languages import extension_of, language_from_path
from llmfoundry_lite.corpus.sources import BINARY_PROBE_BYTES, decode_source, walk_directory
from llmfoundry_lite.corpus.uris import local_path, open_binary, parquet_source, remote_fs

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


class InputError(ValueError):
    """An input file that cannot be used at all; the message names the file."""


@dataclass(frozen=True)
class InputShard:
    """One unit of input: a Parquet file, a JSONL(.gz) file or a source directory."""

    path: str
    kind: str  # "parquet" | "jsonl" | "source_dir"


def _is_table(name: str) -> bool:
    return name.endswith(TABLE_SUFFIXES)


def list_input_shards(paths: list[str]) -> list[InputShard]:
    """Expand user-given paths into sorted input shards.

    A directory holding Parquet/JSONL files (The Stack's ``data/<lang>/*.parquet``
    layout) contributes each of them; any other directory is a tree of source files.
    Paths may be URIs (``corpus/uris.py``); remote ones must name tables, not source trees.
    """
    shards: list[InputShard] = []
    for raw in paths:
        local = local_path(raw)
        if local is None:
            shards.extend(_remote_shards(raw))
            continue
        p = Path(local)
        if not p.exists():
            raise InputError(f"input not found: {raw}")
        if p.is_file():
            if not _is_table(p.name):
                raise InputError(f"{raw}: not a Parquet or JSONL(.gz) file; pass its directory to read source files")
            shards.append(InputShard(str(p), "parquet" if p.name.endswith(".parquet") else "jsonl"))
            continue
        tables = sorted(str(f) for f in p.rglob("*") if f.is_file() and _is_table(f.name))
        if tables:
            shards.extend(InputShard(t, "parquet" if t.endswith(".parquet") else "jsonl") for t in tables)
        else:
            shards.append(InputShard(str(p), "source_dir"))
    return shards


def _kind(name: str) -> str:
    return "parquet" if name.endswith(".parquet") else "jsonl"


def _remote_shards(uri: str) -> list[InputShard]:
    """The tables at a remote URI (one file, or every table below a prefix), as full URIs, sorted."""
    fs, root = remote_fs(uri)
    if not fs.exists(root):
        raise InputError(f"input not found: {uri}")
    if fs.isfile(root):
        if not _is_table(root):
            raise InputError(f"{uri}: not a Parquet or JSONL(.gz) file")
        return [InputShard(uri, _kind(root))]
    tables = sorted(f for f in fs.find(root) if _is_table(f))
    if not tables:
        raise InputError(f"{uri}: no Parquet or JSONL(.gz) files below it (source trees must be local)")
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


def _read_parquet(path: str, skips: Counter, batch_size: int, extras: frozenset[str]) -> Iterator[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(parquet_source(path))
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({err})") from None
    names = pf.schema_arrow.names
    _check_columns(path, names)
    wanted = names if ALL_EXTRAS <= extras else [c for c in names if c in KNOWN_COLUMNS or c in extras]
    index = 0
    try:
        for batch in pf.iter_batches(batch_size=batch_size, columns=wanted):
            for row in batch.to_pylist():
                doc = normalize(row, path, index, skips, extras)
                index += 1
                if doc is not None:
                    yield doc
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{path}: corrupt or truncated Parquet after {index} rows ({err})") from None


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


def _read_jsonl(path: str, skips: Counter, extras: frozenset[str] = frozenset()) -> Iterator[dict]:
    # Lines are read as bytes and decoded one by one: one bad byte costs one record, not the file.
    seen_content = False
    index = 0
    try:
        with open_binary(path) as raw_fh, (gzip.open(raw_fh, "rb") if path.endswith(".gz") else raw_fh) as fh:
            for index, raw in enumerate(fh):
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
        for _ in _read_jsonl(shard.path, Counter()):
            return


def iter_documents(shard: InputShard, skips: Counter, batch_size: int = 512,
                   extras: frozenset[str] = frozenset()) -> Iterator[dict]:
    """Normalized documents of one input shard, in file order; ``extras``: input columns to carry in ``extra``."""
    if shard.kind == "parquet":
        return _read_parquet(shard.path, skips, batch_size, extras)
    if shard.kind == "jsonl":
        return _read_jsonl(shard.path, skips, extras)
    if shard.kind == "source_dir":
        return _read_source_dir(shard.path, skips)
    raise ValueError(f"unknown input kind {shard.kind!r}")
