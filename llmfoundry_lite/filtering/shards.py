"""Units of work of the filter stage (whole row groups of one input file), restartable and engine-independent.

- ``filter_shard`` (pass 1): read one unit, run ``process_document`` on each document, write
  the decisions (no content) to ``work/pass1/<unit>.parquet``, the candidates' MinHash
  signatures to ``<unit>.sig.npy`` (their rows to ``<unit>.row.npy``), counts to
  ``<unit>.json`` and finally the ``<unit>.done`` marker.
- ``finalize_shard`` (pass 3): re-read the unit, join each document with its pass-1 decision
  and the global dedup decisions of its file, and write ``kept/part-NNNNN.parquet`` and
  ``rejected/part-NNNNN.parquet`` (``NNNNN``: the unit's position in this run's plan) with
  every other input column carried through unchanged.

A unit's name hashes its input file's identity (path, size, mtime: ``corpus/identity.py``)
and its rows (``corpus/units.py``), so work made from an older version of a file, or from a
file no longer in the input, is never reused. Every file is written under a temporary name
and renamed into place, and the marker comes last, so a killed run leaves either a finished
unit or one that is redone from scratch.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmfoundry_lite.corpus.identity import InputChangedError, check_unchanged
from llmfoundry_lite.corpus.readers import ALL_EXTRAS, InputShard
from llmfoundry_lite.corpus.units import Unit, iter_unit, unit_rows
from llmfoundry_lite.filtering.dedup_pass import read_decisions
from llmfoundry_lite.filtering.documents import TaskLists, decontam_benchmark, process_document, redacted
from llmfoundry_lite.filtering.list_files import FileContents
from llmfoundry_lite.filtering.records import (
    COMPUTED,
    PASS1_FORMAT,
    PII_TYPES,
    BatchWriter,
    jsonl_extra_fields,
    jsonl_value,
    merge_kind_maps,
    merge_kinds,
    output_schema,
    parquet_extra_fields,
    pass1_schema,
    write_json,
    write_npy,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from llmfoundry_lite.filtering.config import FilterConfig


def shard_name(index: int) -> str:
    return f"{index:05d}"


def _count(counts: dict[str, Any], lang: str, size: int) -> None:
    counts["seen"] += 1
    before = counts["lang_before"].setdefault(lang, [0, 0])
    before[0], before[1] = before[0] + 1, before[1] + size


def _check_rows(unit: Unit, position: int, skips: Counter) -> None:
    """Every row of a Parquet unit was filtered or counted as skipped."""
    rows = unit_rows(unit)
    if rows is not None and position + sum(skips.values()) != rows:
        raise RuntimeError(f"{unit.shard.path} rows {unit.start}-{unit.stop}: {position} documents + "
                           f"{sum(skips.values())} skipped != {rows} rows")


def filter_shard(index: int, unit: Unit, identity: dict, cfg: FilterConfig, work: str, lists: FileContents,
                 tick: Any = None) -> dict:
    """Pass 1 over one unit (see module docstring); returns its counts. Skips finished units. ``lists``: the bytes
    of the config's list files, read on the driver (``list_files``)."""
    out = Path(work) / "pass1"
    key, shard = unit.name, unit.shard
    if (out / f"{key}.done").exists():
        done = json.loads((out / f"{key}.json").read_text())
        if done.get("format") == PASS1_FORMAT:
            return done
    skips: Counter = Counter()
    counts: dict[str, Any] = {"format": PASS1_FORMAT, "shard": shard.path, "rows": [unit.start, unit.stop],
                              "identity": identity, "seen": 0, "lang_before": {}}
    decontaminated: Counter = Counter()
    kinds: dict[str, str] = {}
    candidates = rejected = 0
    writer = BatchWriter(out / f"{key}.parquet", pass1_schema(), cfg.batch_rows)
    rows, signatures = [], []
    extras = ALL_EXTRAS if shard.kind == "jsonl" else frozenset()
    compiled = TaskLists.compile(cfg, lists)  # the license, opt-out and benchmark lists, built once per task
    position = 0
    for position, doc in enumerate(iter_unit(unit, skips, extras), 1):
        record, signature = process_document(doc, cfg, compiled)
        record["key"] = unit.input_key  # pass 2 ties the row to its file by this value (records.py)
        writer.add(record)
        _count(counts, doc["lang"], doc["size"])
        if "extra" in doc:
            merge_kinds(kinds, doc["extra"])
        if record["reason"]:
            rejected += 1
            if record["reason"] == "decontaminated":
                decontaminated[decontam_benchmark(record["detail"])] += 1
        else:
            candidates += 1
        if signature is not None:
            rows.append(record["row"])
            signatures.append(signature)
        if tick is not None and position % cfg.progress_every == 0:
            tick(cfg.progress_every, candidates, rejected)  # docs since last tick, running totals
    writer.close()
    _check_rows(unit, position, skips)
    check_unchanged(shard, identity)  # a file that grew while it was read must not be recorded as read
    sig = np.stack(signatures) if signatures else np.zeros((0, cfg.dedup.num_perm), np.uint32)
    write_npy(out / f"{key}.sig.npy", sig)
    write_npy(out / f"{key}.row.npy", np.asarray(rows, dtype=np.int64))
    counts.update(skipped=dict(skips), decontaminated=dict(decontaminated), jsonl_kinds=kinds, records=position)
    counts["seen"] += sum(skips.values())
    write_json(out / f"{key}.json", counts)
    (out / f"{key}.done").touch()
    if tick is not None:
        tick((counts["seen"] - sum(skips.values())) % cfg.progress_every, candidates, rejected)
    return json.loads((out / f"{key}.json").read_text())


def file_kinds(units: list[Unit], first: list[dict]) -> dict[str, dict[str, str]]:
    """By input file key: the kinds of its JSONL extra columns merged over its units' pass-1 counts ``first``, so
    every part of a file cut into byte ranges has the columns and types the file read whole would give."""
    by_file: dict[str, list[dict[str, str]]] = {}
    for unit, counts in zip(units, first, strict=True):
        by_file.setdefault(unit.input_key, []).append(counts.get("jsonl_kinds", {}))
    return {key: merge_kind_maps(maps) for key, maps in by_file.items()}


def _extras(shard: InputShard, kinds: dict[str, str]) -> tuple[list[pa.Field], dict[str, str]]:
    """The carried-through input columns of ``shard`` and, for JSONL, their kinds (``kinds``: the whole file's,
    from ``file_kinds``)."""
    if shard.kind == "parquet":
        return parquet_extra_fields(shard.path), {}
    return jsonl_extra_fields(kinds), kinds


def _output_row(doc: dict, record: dict, decision: tuple | None, rejected: bool, kinds: dict[str, str],
                extras: list[str]) -> dict:
    row = {k: doc[k] for k in ("id", "content", "path", "lang", "repository_name", "size", "ext")}
    row.update({k: v for k, v in record.items() if k in COMPUTED})
    row["dup_cluster"], row["dup_cluster_size"] = (decision[1], decision[2]) if decision else ("", 1)
    extra = doc.get("extra", {})
    for name in extras:
        row[name] = jsonl_value(extra.get(name), kinds[name]) if kinds else extra.get(name)
    if not rejected:
        row.pop("reason"), row.pop("detail")
    return row


def finalize_shard(index: int, unit: Unit, identity: dict, cfg: FilterConfig, work: str, output: str,
                   kinds: dict[str, str]) -> dict:
    """Pass 3 for one unit: re-read it, apply the decisions, write kept/rejected parts; returns counts.

    Reused only when the same rows of the same input file met the same dedup decisions in an earlier attempt.
    ``kinds``: the JSONL extra columns of the unit's whole file (``file_kinds``).
    """
    import pyarrow.parquet as pq

    key, name, shard = unit.name, shard_name(index), unit.shard
    stop = unit.stop if unit.stop is not None else 1 << 62
    decisions = [d for d in read_decisions(Path(work), unit.input_key) if unit.start <= d["row"] < stop]
    marker = Path(work) / "final" / f"{name}.json"
    parts = [Path(output) / sub / f"part-{name}.parquet" for sub in ("kept", "rejected")]
    digest = hashlib.sha256(json.dumps(decisions, sort_keys=True).encode()).hexdigest()[:20]
    stamp = {"unit": key, "identity": identity, "decisions": digest}
    if marker.exists() and all(p.exists() for p in parts):
        previous = json.loads(marker.read_text())
        if previous["stamp"] == stamp:
            return previous["counts"]
    check_unchanged(shard, identity)
    # row -> (reason, id of the representative, cluster size) for this file's cluster members.
    members = {r["row"]: (r["reason"], r["representative_id"], r["cluster_size"]) for r in decisions}
    fields, kinds = _extras(shard, kinds)
    extra_names = [f.name for f in fields]
    writers = {False: BatchWriter(parts[0], output_schema(False, fields), cfg.batch_rows),
               True: BatchWriter(parts[1], output_schema(True, fields), cfg.batch_rows)}
    counts: dict[str, Any] = {"kept": 0, "rejected": Counter(), "rejected_by_lang": {}, "lang_after": {},
                              "pii": Counter()}
    records = (r for b in pq.ParquetFile(Path(work) / "pass1" / f"{key}.parquet").iter_batches(batch_size=cfg.batch_rows)
               for r in b.to_pylist())
    extras = ALL_EXTRAS if shard.kind == "jsonl" else frozenset(extra_names)
    for doc in iter_unit(unit, Counter(), extras):
        record = next(records, None)
        if record is None or record["row"] != doc["row"]:
            raise InputChangedError(f"{shard.path}: row {doc['row']} was not seen by pass 1; the file changed "
                                    f"during this run — rerun to redo the work made from it")
        decision = members.get(record["row"])
        if decision is not None and decision[0] != "representative" and not record["reason"]:
            record["reason"], record["detail"] = decision[0], f"duplicate of {decision[1]}"
        rejected = bool(record["reason"])
        if not rejected:
            _write_kept(doc, record, cfg, counts)
        elif not cfg.store_rejected_content:
            doc["content"] = ""
        writers[rejected].add(_output_row(doc, record, decision, rejected, kinds, extra_names))
        if rejected:
            counts["rejected"][record["reason"]] += 1
            counts["rejected_by_lang"].setdefault(record["reason"], Counter())[record["lang"]] += 1
    if next(records, None) is not None:
        raise InputChangedError(f"{shard.path}: fewer rows than pass 1 read; the file changed during this run")
    check_unchanged(shard, identity)
    for w in writers.values():
        w.close()
    write_json(marker, {"stamp": stamp, "counts": counts})
    return json.loads(marker.read_text())["counts"]


def _write_kept(doc: dict, record: dict, cfg: FilterConfig, counts: dict[str, Any]) -> None:
    """Redact a kept document again (pass 1 stored only counts) and check it is the one pass 1 saw."""
    if any(record[f"pii_{t}"] for t in PII_TYPES):
        doc["content"], _ = redacted(doc, cfg)
        doc["size"] = len(doc["content"].encode("utf-8"))
    if doc["size"] != record["size"]:
        raise InputChangedError(f"{doc['id']}: {doc['size']} bytes now, {record['size']} in pass 1; "
                                f"the input changed during this run")
    counts["kept"] += 1
    for t in PII_TYPES:
        counts["pii"][t] += record[f"pii_{t}"]
    after = counts["lang_after"].setdefault(record["lang"], [0, 0])
    after[0], after[1] = after[0] + 1, after[1] + record["size"]
