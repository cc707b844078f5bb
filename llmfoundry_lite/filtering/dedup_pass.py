"""Pass 2: global exact + near dedup over the pass-1 fingerprints of every shard.

Reads only small columns (ordinal, id, hash) and the signature files, never the content.
Clusters come from the engine: locally, a hash table for exact duplicates and datasketch's
in-memory ``MinHashLSH`` for near ones; on Spark, a ``groupBy`` on the hash and a shuffle of
band keys (``filtering/spark_engine.py``). The decisions are written
per shard to ``work/dedup/NNNNN.parquet`` and a summary to ``work/dedup.json`` (the marker).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmfoundry_lite.filtering.dedup import decisions, exact_clusters, near_clusters_local, shard_of
from llmfoundry_lite.filtering.shards import shard_name

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import DedupConfig, FilterConfig

def pass1_files(work: Path, n_shards: int) -> list[str]:
    """Paths of every shard's pass-1 record file."""
    return [str(work / "pass1" / f"{shard_name(i)}.parquet") for i in range(n_shards)]


def exact_local(work: Path, n_shards: int) -> dict[int, list[int]]:
    """Exact clusters over all shards with one in-memory hash table."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ords, hashes = [], []
    for path in pass1_files(work, n_shards):
        table = pq.read_table(path, columns=["ordinal", "reason", "content_hash"])
        table = table.filter(pc.equal(table["reason"], ""))
        ords.append(table["ordinal"].to_numpy())
        hashes += table["content_hash"].to_pylist()
    return exact_clusters(np.concatenate(ords) if ords else np.zeros(0, np.int64), hashes)


def ids_of(work: Path, n_shards: int, ordinals: set[int]) -> dict[int, str]:
    """Document ids of ``ordinals`` (cluster representatives), read shard by shard."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = pa.array(sorted(ordinals), pa.int64())
    out: dict[int, str] = {}
    for path in pass1_files(work, n_shards):
        table = pq.read_table(path, columns=["ordinal", "id"])
        table = table.filter(pc.is_in(table["ordinal"], value_set=wanted))
        out.update(zip(table["ordinal"].to_pylist(), table["id"].to_pylist(), strict=True))
    return out


def _signatures(work: Path, n_shards: int, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    ords = [np.load(work / "pass1" / f"{shard_name(i)}.ord.npy") for i in range(n_shards)]
    sigs = [np.load(work / "pass1" / f"{shard_name(i)}.sig.npy") for i in range(n_shards)]
    if not ords:
        return np.zeros(0, np.int64), np.zeros((0, num_perm), np.uint32)
    return np.concatenate(ords), np.concatenate(sigs)


def near_local(work: Path, n_shards: int, dropped: frozenset[int], cfg: DedupConfig) -> dict[int, list[int]]:
    """Near clusters with datasketch's in-memory LSH over every shard's signatures."""
    ords, sigs = _signatures(work, n_shards, cfg.num_perm)
    mask = np.fromiter((o not in dropped for o in ords.tolist()), dtype=bool, count=len(ords))
    return near_clusters_local(ords[mask], sigs[mask], cfg)


def _rows_by_shard(exact: dict, near: dict, id_of: dict[int, str]) -> dict[int, list[dict]]:
    """Decision rows (representatives first, then drops overriding them) grouped by shard."""
    rows: dict[int, dict] = {}
    for clusters in (exact, near):
        for rep, members in clusters.items():
            rows.setdefault(rep, {"ordinal": rep, "reason": "representative", "representative_id": id_of[rep],
                                  "cluster_size": len(members)})
    for ordinal, (reason, rep, size) in decisions(exact, near).items():
        rows[ordinal] = {"ordinal": ordinal, "reason": reason, "representative_id": id_of[rep], "cluster_size": size}
    by_shard: dict[int, list[dict]] = {}
    for ordinal in sorted(rows):
        by_shard.setdefault(shard_of(ordinal), []).append(rows[ordinal])
    return by_shard


def _write_decisions(work: Path, n_shards: int, by_shard: dict[int, list[dict]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("ordinal", pa.int64()), ("reason", pa.string()), ("representative_id", pa.string()),
                        ("cluster_size", pa.int64())])
    (work / "dedup").mkdir(parents=True, exist_ok=True)
    for i in range(n_shards):
        path = work / "dedup" / f"{shard_name(i)}.parquet"
        pq.write_table(pa.Table.from_pylist(by_shard.get(i, []), schema=schema), path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)


def global_dedup(cfg: FilterConfig, work: str, n_shards: int, engine: Any) -> dict:
    """Cluster duplicates across all shards and write per-shard decisions; returns the summary.

    ``engine`` supplies ``exact_clusters(work, n_shards)`` and ``near_clusters(work, n_shards,
    dropped, dedup_cfg)`` (local: in-memory; Spark: shuffles). Only cluster members and the
    representatives' ids ever reach this process.
    """
    work_dir = Path(work)
    marker = work_dir / "dedup.json"
    if marker.exists():
        return json.loads(marker.read_text())
    exact = engine.exact_clusters(work_dir, n_shards) if cfg.dedup.exact else {}
    near: dict[int, list[int]] = {}
    if cfg.dedup.near:
        dropped = frozenset(m for members in exact.values() for m in members[1:])
        near = engine.near_clusters(work_dir, n_shards, dropped, cfg.dedup)
    id_of = ids_of(work_dir, n_shards, set(exact) | set(near))
    _write_decisions(work_dir, n_shards, _rows_by_shard(exact, near, id_of))
    summary = {
        "exact_clusters": len(exact),
        "near_clusters": len(near),
        "exact_cluster_sizes": dict(sorted(Counter(len(m) for m in exact.values()).items())),
        "near_cluster_sizes": dict(sorted(Counter(len(m) for m in near.values()).items())),
    }
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, marker)
    return json.loads(marker.read_text())
