"""Per-input-shard work units of the filter stage, restartable and engine-independent.

- ``filter_shard`` (pass 1): read one input shard, run ``process_document`` on each document,
  write every record to ``work/pass1/NNNNN.parquet``, the MinHash signatures of the candidates
  to ``NNNNN.sig.npy``, counts to ``NNNNN.json``, and finally the ``NNNNN.done`` marker.
- ``finalize_shard`` (pass 3): join pass-1 records with the global dedup decisions of that
  shard and write ``kept/part-NNNNN.parquet`` and ``rejected/part-NNNNN.parquet``.

Every file is written under a temporary name and renamed into place, and the marker comes
last, so a killed run leaves either a finished unit or one that is redone from scratch.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmfoundry_lite.corpus.readers import InputShard, iter_documents
from llmfoundry_lite.filtering.dedup import make_ordinal
from llmfoundry_lite.filtering.documents import PII_TYPES, process_document

if TYPE_CHECKING:
    import pyarrow as pa

    from llmfoundry_lite.filtering.config import FilterConfig

STACK_COLUMNS = ("id", "content", "path", "lang", "repository_name", "size", "ext")
FLUSH_BYTES = 64 << 20  # also flush a write batch once it holds this much content


def record_schema(final: bool, rejected: bool) -> pa.Schema:
    """Arrow schema of pass-1 records (``final=False``) or of kept/rejected output files."""
    import pyarrow as pa

    fields = [pa.field(c, pa.int64() if c == "size" else pa.string()) for c in STACK_COLUMNS]
    if not final:
        fields.append(pa.field("ordinal", pa.int64()))
    if rejected or not final:
        fields += [pa.field("reason", pa.string()), pa.field("detail", pa.string())]
    fields += [
        pa.field("max_line_length", pa.int64()), pa.field("mean_line_length", pa.float64()),
        pa.field("alphanum_fraction", pa.float64()),
        *[pa.field(f"pii_{t}", pa.int64()) for t in PII_TYPES],
        pa.field("content_hash", pa.string()),
    ]
    if final:
        fields += [pa.field("dup_cluster", pa.string()), pa.field("dup_cluster_size", pa.int64())]
    return pa.schema(fields)


def shard_name(index: int) -> str:
    return f"{index:05d}"


class BatchWriter:
    """Parquet writer that buffers rows and renames the file into place on ``close``."""

    def __init__(self, path: Path, schema: pa.Schema, batch_rows: int) -> None:
        import pyarrow.parquet as pq

        self.path, self.schema, self.batch_rows = path, schema, batch_rows
        self.tmp = path.with_name(path.name + ".tmp")
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        self.rows: list[dict] = []
        self.bytes = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.bytes += row["size"]
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


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _count(counts: dict[str, Any], lang: str, size: int) -> None:
    counts["seen"] += 1
    before = counts["lang_before"].setdefault(lang, [0, 0])
    before[0], before[1] = before[0] + 1, before[1] + size


def filter_shard(index: int, shard: InputShard, cfg: FilterConfig, work: str, tick: Any = None) -> dict:
    """Pass 1 over one input shard (see module docstring); returns its counts. Skips finished shards."""
    out = Path(work) / "pass1"
    name = shard_name(index)
    if (out / f"{name}.done").exists():
        return json.loads((out / f"{name}.json").read_text())
    skips: Counter = Counter()
    counts: dict[str, Any] = {"shard": shard.path, "seen": 0, "lang_before": {}}
    candidates = rejected = 0
    writer = BatchWriter(out / f"{name}.parquet", record_schema(final=False, rejected=False), cfg.batch_rows)
    ordinals, signatures = [], []
    for position, doc in enumerate(iter_documents(shard, skips, batch_size=cfg.batch_rows)):
        record, signature = process_document(doc, cfg)
        record["ordinal"] = make_ordinal(index, position)
        writer.add(record)
        _count(counts, doc["lang"], doc["size"])
        candidates, rejected = (candidates, rejected + 1) if record["reason"] else (candidates + 1, rejected)
        if signature is not None:
            ordinals.append(record["ordinal"])
            signatures.append(signature)
        if tick is not None and (position + 1) % cfg.progress_every == 0:
            tick(cfg.progress_every, candidates, rejected)  # docs since last tick, running totals
    writer.close()
    sig = np.stack(signatures) if signatures else np.zeros((0, cfg.dedup.num_perm), np.uint32)
    np.save(out / f"{name}.sig.npy", sig)
    np.save(out / f"{name}.ord.npy", np.asarray(ordinals, dtype=np.int64))
    counts["skipped"] = dict(skips)
    counts["seen"] += sum(skips.values())
    _write_json(out / f"{name}.json", counts)
    (out / f"{name}.done").touch()
    if tick is not None:
        tick((counts["seen"] - sum(skips.values())) % cfg.progress_every, candidates, rejected)
    return json.loads((out / f"{name}.json").read_text())


def _final_row(record: dict, decision: tuple[str, str, int] | None, rejected: bool) -> dict:
    row = {k: v for k, v in record.items() if k != "ordinal"}
    if decision is not None:
        row["dup_cluster"], row["dup_cluster_size"] = decision[1], decision[2]
    else:
        row["dup_cluster"], row["dup_cluster_size"] = "", 1
    if not rejected:
        row.pop("reason"), row.pop("detail")
    return row


def finalize_shard(index: int, cfg: FilterConfig, work: str, output: str) -> dict:
    """Pass 3 for one shard: apply the dedup decisions, write kept/rejected parts; returns counts."""
    import pyarrow.parquet as pq

    name = shard_name(index)
    marker = Path(work) / "final" / f"{name}.json"
    if marker.exists():
        return json.loads(marker.read_text())
    # ordinal -> (reason, id of the representative, cluster size) for this shard's cluster members.
    table = pq.read_table(Path(work) / "dedup" / f"{name}.parquet").to_pylist()
    members = {r["ordinal"]: (r["reason"], r["representative_id"], r["cluster_size"]) for r in table}
    kept = BatchWriter(Path(output) / "kept" / f"part-{name}.parquet", record_schema(True, False), cfg.batch_rows)
    rejected = BatchWriter(Path(output) / "rejected" / f"part-{name}.parquet", record_schema(True, True),
                           cfg.batch_rows)
    counts: dict[str, Any] = {"kept": 0, "rejected": Counter(), "rejected_by_lang": {}, "lang_after": {},
                              "pii": Counter()}
    for batch in pq.ParquetFile(Path(work) / "pass1" / f"{name}.parquet").iter_batches(batch_size=cfg.batch_rows):
        for record in batch.to_pylist():
            decision = members.get(record["ordinal"])
            if decision is not None and decision[0] != "representative" and not record["reason"]:
                record["reason"], record["detail"] = decision[0], f"duplicate of {decision[1]}"
            if record["reason"]:
                rejected.add(_final_row(record, decision, rejected=True))
                counts["rejected"][record["reason"]] += 1
                by_lang = counts["rejected_by_lang"].setdefault(record["reason"], Counter())
                by_lang[record["lang"]] += 1
                continue
            kept.add(_final_row(record, decision, rejected=False))
            counts["kept"] += 1
            for t in PII_TYPES:
                counts["pii"][t] += record[f"pii_{t}"]
            after = counts["lang_after"].setdefault(record["lang"], [0, 0])
            after[0], after[1] = after[0] + 1, after[1] + record["size"]
    kept.close()
    rejected.close()
    _write_json(marker, counts)
    return json.loads(marker.read_text())
