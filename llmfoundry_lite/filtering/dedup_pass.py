"""Pass 2: global exact + near dedup over the pass-1 fingerprints of every shard.

Reads only small columns (row, id, hash) and the signature files, never the content. A
document's ordinal is computed here from the input file's position in *this* run's input list
and its row, so pass-1 results of unchanged files stay valid when files are added or removed.
Clusters come from the engine: locally, a hash table for exact duplicates and datasketch's
in-memory ``MinHashLSH`` for near ones; on Spark, a ``groupBy`` on the hash and a shuffle of
band keys (``filtering/spark_engine.py``). The decisions are written per input file to
``work/dedup/<key>.parquet`` (keyed by row) and a summary to ``work/dedup.json`` (the
marker), which names the input set it was computed for.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmfoundry_lite.filtering.dedup import ORDINAL_SHIFT, decisions, exact_clusters, near_clusters_local, shard_of

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import DedupConfig, FilterConfig

def pass1_files(work: Path, keys: list[str]) -> list[str]:
    """Paths of every input file's pass-1 record file, in input order."""
    return [str(work / "pass1" / f"{key}.parquet") for key in keys]


def exact_local(work: Path, keys: list[str]) -> dict[int, list[int]]:
    """Exact clusters over all input files with one in-memory hash table."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ords, hashes = [], []
    for index, path in enumerate(pass1_files(work, keys)):
        table = pq.read_table(path, columns=["row", "reason", "content_hash"])
        table = table.filter(pc.equal(table["reason"], ""))
        ords.append((index << ORDINAL_SHIFT) | table["row"].to_numpy())
        hashes += table["content_hash"].to_pylist()
    return exact_clusters(np.concatenate(ords) if ords else np.zeros(0, np.int64), hashes)


def ids_of(work: Path, keys: list[str], ordinals: set[int]) -> dict[int, str]:
    """Document ids of ``ordinals`` (cluster representatives), read file by file."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out: dict[int, str] = {}
    for index, path in enumerate(pass1_files(work, keys)):
        rows = sorted(o & ((1 << ORDINAL_SHIFT) - 1) for o in ordinals if shard_of(o) == index)
        if not rows:
            continue
        table = pq.read_table(path, columns=["row", "id"])
        table = table.filter(pc.is_in(table["row"], value_set=pa.array(rows, pa.int64())))
        out.update(((index << ORDINAL_SHIFT) | r, i) for r, i in
                   zip(table["row"].to_pylist(), table["id"].to_pylist(), strict=True))
    return out


def signature_files(work: Path, keys: list[str]) -> list[tuple[int, str, str]]:
    """(input index, rows .npy, signatures .npy) of every input file."""
    return [(i, str(work / "pass1" / f"{k}.row.npy"), str(work / "pass1" / f"{k}.sig.npy")) for i, k in enumerate(keys)]


def load_signatures(index: int, rows_path: str, sigs_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Ordinals (this run's numbering) and MinHash signatures of one input file's candidates."""
    return (index << ORDINAL_SHIFT) | np.load(rows_path), np.load(sigs_path)


def near_local(work: Path, keys: list[str], dropped: frozenset[int], cfg: DedupConfig) -> dict[int, list[int]]:
    """Near clusters with datasketch's in-memory LSH over every input file's signatures."""
    pairs = [load_signatures(*f) for f in signature_files(work, keys)]
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


def _write_decisions(work: Path, keys: list[str], by_shard: dict[int, list[dict]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("row", pa.int64()), ("reason", pa.string()), ("representative_id", pa.string()),
                        ("cluster_size", pa.int64())])
    (work / "dedup").mkdir(parents=True, exist_ok=True)
    for i, key in enumerate(keys):
        path = work / "dedup" / f"{key}.parquet"
        pq.write_table(pa.Table.from_pylist(by_shard.get(i, []), schema=schema), path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)


def global_dedup(cfg: FilterConfig, work: str, keys: list[str], engine: Any) -> dict:
    """Cluster duplicates across all input files and write per-file decisions; returns the summary.

    ``keys``: the input files' identity keys in this run's input order. ``engine`` supplies
    ``exact_clusters(work, keys)`` and ``near_clusters(work, keys, dropped, dedup_cfg)``
    (local: in-memory; Spark: shuffles). Only cluster members and the representatives' ids
    ever reach this process. A marker made for another input list is recomputed.
    """
    work_dir = Path(work)
    marker = work_dir / "dedup.json"
    if marker.exists():
        summary = json.loads(marker.read_text())
        if summary.get("inputs") == keys and all((work_dir / "dedup" / f"{k}.parquet").exists() for k in keys):
            return summary
        marker.unlink()
    exact = engine.exact_clusters(work_dir, keys) if cfg.dedup.exact else {}
    near: dict[int, list[int]] = {}
    if cfg.dedup.near:
        dropped = frozenset(m for members in exact.values() for m in members[1:])
        near = engine.near_clusters(work_dir, keys, dropped, cfg.dedup)
    id_of = ids_of(work_dir, keys, set(exact) | set(near))
    _write_decisions(work_dir, keys, _rows_by_shard(exact, near, id_of))
    summary = {
        "inputs": keys,
        "exact_clusters": len(exact),
        "near_clusters": len(near),
        "exact_cluster_sizes": dict(sorted(Counter(len(m) for m in exact.values()).items())),
        "near_cluster_sizes": dict(sorted(Counter(len(m) for m in near.values()).items())),
    }
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, marker)
    return json.loads(marker.read_text())
