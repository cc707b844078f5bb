"""Pass 2: global exact + near dedup over the pass-1 fingerprints of every shard.

Reads only small columns (row, id, hash) and the signature files, never the content. A
document's ordinal is computed here from the input file's position in *this* run's input list
and its row, so pass-1 results of unchanged files stay valid when files are added or removed.
Clusters come from the engine: locally, a hash table for exact duplicates and datasketch's
in-memory ``MinHashLSH`` for near ones; on Spark, a ``groupBy`` on the hash and a shuffle of
band keys with distributed connected components (``filtering/spark_dedup.py``). Both write
the decisions per input file to ``work/dedup/key=<key>/`` (rows ``row, reason,
representative_id, cluster_size``; no directory when a file has none); the summary goes to
``work/dedup.json`` (the marker), which names the input set it was computed for.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from llmfoundry_lite.filtering.dedup import ORDINAL_SHIFT, decisions, exact_clusters, near_clusters_local, shard_of

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import DedupConfig, FilterConfig

class PassUnit(NamedTuple):
    """What pass 2 needs of one unit: its pass-1 name, its input file's index in this run, that file's key,
    the name of the source it belongs to ('' in a single-source run) and how many records pass 1 wrote."""

    name: str
    file_index: int
    file_key: str
    source: str
    records: int


def check_records(found: int, units: list[PassUnit], how: str) -> None:
    """Pass 2 must see every record pass 1 wrote: a shortfall would silently drop nothing from the missing rows."""
    expected = sum(u.records for u in units)
    if found != expected:
        raise RuntimeError(f"pass 2 {how} {found} pass-1 records, but pass 1 wrote {expected} in "
                           f"{len(units)} units: rows were lost between the passes (no dedup decision is "
                           f"written from an incomplete read)")


def cross_source_counts(pairs: Counter, units: list[PassUnit]) -> dict[str, int]:
    """``{"<dropped doc's source> -> <kept copy's source>": n}`` from counts of (member file, representative file).

    Sorted by (member source, representative source), as the Spark engine sorts them."""
    source_of = {u.file_index: u.source for u in units}
    out: Counter = Counter()
    for (member, rep), n in pairs.items():
        if source_of[member] != source_of[rep]:
            out[source_of[member], source_of[rep]] += n
    return {f"{m} -> {r}": n for (m, r), n in sorted(out.items())}


def pass1_files(work: Path, units: list[PassUnit]) -> list[tuple[int, str]]:
    """(input file index, pass-1 record file) of every unit, in input order."""
    return [(u.file_index, str(work / "pass1" / f"{u.name}.parquet")) for u in units]


def exact_local(work: Path, units: list[PassUnit]) -> dict[int, list[int]]:
    """Exact clusters over all input files with one in-memory hash table."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ords, hashes, read = [], [], 0
    for index, path in pass1_files(work, units):
        table = pq.read_table(path, columns=["row", "reason", "content_hash"])
        read += table.num_rows
        table = table.filter(pc.equal(table["reason"], ""))
        ords.append((index << ORDINAL_SHIFT) | table["row"].to_numpy())
        hashes += table["content_hash"].to_pylist()
    check_records(read, units, "read")
    return exact_clusters(np.concatenate(ords) if ords else np.zeros(0, np.int64), hashes)


def ids_of(work: Path, units: list[PassUnit], ordinals: set[int]) -> dict[int, str]:
    """Document ids of ``ordinals`` (cluster representatives), read file by file."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out: dict[int, str] = {}
    for index, path in pass1_files(work, units):
        rows = sorted(o & ((1 << ORDINAL_SHIFT) - 1) for o in ordinals if shard_of(o) == index)
        if not rows:
            continue
        table = pq.read_table(path, columns=["row", "id"])
        table = table.filter(pc.is_in(table["row"], value_set=pa.array(rows, pa.int64())))
        out.update(((index << ORDINAL_SHIFT) | r, i) for r, i in
                   zip(table["row"].to_pylist(), table["id"].to_pylist(), strict=True))
    return out


def signature_files(work: Path, units: list[PassUnit]) -> list[tuple[int, str, str]]:
    """(input file index, rows .npy, signatures .npy) of every unit."""
    return [(u.file_index, str(work / "pass1" / f"{u.name}.row.npy"), str(work / "pass1" / f"{u.name}.sig.npy"))
            for u in units]


def load_signatures(index: int, rows_path: str, sigs_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Ordinals (this run's numbering) and MinHash signatures of one input file's candidates."""
    return (index << ORDINAL_SHIFT) | np.load(rows_path), np.load(sigs_path)


def near_local(work: Path, units: list[PassUnit], dropped: frozenset[int], cfg: DedupConfig) -> dict[int, list[int]]:
    """Near clusters with datasketch's in-memory LSH over every unit's signatures."""
    pairs = [load_signatures(*f) for f in signature_files(work, units)]
    if not pairs:
        return {}
    ords, sigs = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
    mask = np.fromiter((o not in dropped for o in ords.tolist()), dtype=bool, count=len(ords))
    return near_clusters_local(ords[mask], sigs[mask], cfg)


def _rows_by_shard(exact: dict, near: dict, id_of: dict[int, str]) -> dict[int, list[dict]]:
    """Decision rows (representatives first, then drops overriding them) grouped by input file."""
    rows: dict[int, dict] = {}
    for clusters in (exact, near):
        for rep, members in clusters.items():
            rows.setdefault(rep, {"row": rep, "reason": "representative", "representative_id": id_of[rep],
                                  "cluster_size": len(members)})
    for ordinal, (reason, rep, size) in decisions(exact, near).items():
        rows[ordinal] = {"row": ordinal, "reason": reason, "representative_id": id_of[rep], "cluster_size": size}
    by_shard: dict[int, list[dict]] = {}
    mask = (1 << ORDINAL_SHIFT) - 1
    for ordinal in sorted(rows):
        by_shard.setdefault(shard_of(ordinal), []).append({**rows[ordinal], "row": ordinal & mask})
    return by_shard


DECISION_COLUMNS = ("row", "reason", "representative_id", "cluster_size")


def decisions_dir(work: Path, key: str) -> Path:
    """Where the dedup decisions of one input file live (Spark's ``partitionBy("key")`` layout)."""
    return work / "dedup" / f"key={key}"


def read_decisions(work: Path, key: str) -> list[dict]:
    """The decision rows of one input file, sorted by row (none when it has no directory)."""
    import pyarrow.parquet as pq

    folder = decisions_dir(work, key)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    rows = [r for f in files for r in pq.read_table(f, columns=list(DECISION_COLUMNS)).to_pylist()]
    return sorted(rows, key=lambda r: r["row"])


def _write_decisions(work: Path, units: list[PassUnit], by_shard: dict[int, list[dict]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("row", pa.int64()), ("reason", pa.string()), ("representative_id", pa.string()),
                        ("cluster_size", pa.int64())])
    key_of = {u.file_index: u.file_key for u in units}
    for i, rows in by_shard.items():
        folder = decisions_dir(work, key_of[i])
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "part-00000.parquet")


def local_dedup(cfg: FilterConfig, work: Path, units: list[PassUnit]) -> dict:
    """Pass 2 in this process: in-memory clusters, then per-file decisions; returns the summary counts."""
    exact = exact_local(work, units) if cfg.dedup.exact else {}
    near: dict[int, list[int]] = {}
    if cfg.dedup.near:
        dropped = frozenset(m for members in exact.values() for m in members[1:])
        near = near_local(work, units, dropped, cfg.dedup)
    id_of = ids_of(work, units, set(exact) | set(near))
    _write_decisions(work, units, _rows_by_shard(exact, near, id_of))
    summary = {
        "exact_clusters": len(exact),
        "near_clusters": len(near),
        "exact_cluster_sizes": {str(k): v for k, v in sorted(Counter(len(m) for m in exact.values()).items())},
        "near_cluster_sizes": {str(k): v for k, v in sorted(Counter(len(m) for m in near.values()).items())},
    }
    if len({u.source for u in units}) > 1:
        pairs = Counter((shard_of(m), shard_of(rep)) for m, (_, rep, _) in decisions(exact, near).items())
        summary["cross_source"] = cross_source_counts(pairs, units)
    return summary


def global_dedup(cfg: FilterConfig, work: str, units: list[PassUnit], engine: Any) -> dict:
    """Cluster duplicates across all input files and write per-file decisions; returns the summary.

    ``units``: this run's units in input order. ``engine.dedup(cfg, work, units)`` does the work
    (local: in memory; Spark: DataFrame jobs) and returns the counts. A marker made for another
    plan is recomputed from scratch.
    """
    work_dir = Path(work)
    marker = work_dir / "dedup.json"
    names = [f"{u.name}@{u.source}" if u.source else u.name for u in units]  # sources name the cross counts
    if marker.exists():
        summary = json.loads(marker.read_text())
        if summary.get("inputs") == names:
            return summary
        marker.unlink()
    shutil.rmtree(work_dir / "dedup", ignore_errors=True)
    (work_dir / "dedup").mkdir(parents=True)
    summary = {"inputs": names, **engine.dedup(cfg, work_dir, units)}
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, marker)
    return json.loads(marker.read_text())
