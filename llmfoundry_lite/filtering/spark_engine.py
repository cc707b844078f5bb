"""Spark executor: the same shard tasks as the local engine, and near dedup by shuffling band keys.

Passes 1 and 3 run ``filter_shard``/``finalize_shard`` as Spark tasks, one per input shard (on
a cluster ``output`` must be on a shared filesystem). Exact dedup is a ``groupBy`` on the
content hash over the pass-1 files' small columns. Near dedup does not build an in-memory
LSH index: executors read the per-shard signature files, emit one ``((band, band key),
ordinal)`` row per band, the shuffle groups equal keys, and every bucket with two or more
members becomes star edges ``(smallest, other)``. Only those edges — far fewer than documents —
come back to the driver, whose union-find yields the same connected components as the local
path (same buckets, order-independent relation), hence the same kept set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmfoundry_lite.filtering.dedup import UnionFind, band_keys

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import DedupConfig


def _band_rows(files: tuple[int, str, str], dropped: frozenset[int], cfg: DedupConfig) -> Iterator[tuple]:
    from llmfoundry_lite.filtering.dedup_pass import load_signatures

    ords, sigs = load_signatures(*files)
    keep = np.fromiter((o not in dropped for o in ords.tolist()), dtype=bool, count=len(ords))
    keys = band_keys(sigs[keep], cfg)
    for ordinal, row in zip(ords[keep].tolist(), keys, strict=True):
        for band, key in enumerate(row):
            yield (band, key.tobytes()), ordinal


def _star_edges(members: Any) -> list[tuple[int, int]]:
    ms = sorted(set(members))
    return [(ms[0], m) for m in ms[1:]]


class SparkEngine:
    """A local or cluster Spark session that runs the filter stage's tasks."""

    def __init__(self, master: str, progress: bool) -> None:
        self.master = master
        self.progress = progress
        self.spark: Any = None

    def __enter__(self) -> SparkEngine:
        # Python workers must run the interpreter that holds this package and its pinned deps.
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
        from pyspark.sql import SparkSession

        self.spark = (SparkSession.builder.master(self.master).appName("llmfoundry_lite-filter")
                      .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", str(self.progress).lower())
                      .getOrCreate())
        self.spark.sparkContext.setLogLevel("ERROR")
        return self

    def __exit__(self, *exc: object) -> None:
        self.spark.stop()

    def map(self, fn: Callable, tasks: list[tuple], desc: str, tick: bool = False) -> list:
        """``[fn(*task) for task in tasks]`` as Spark tasks, results in task order."""
        if not tasks:
            return []
        sc = self.spark.sparkContext
        indexed = list(enumerate(tasks))
        out = sc.parallelize(indexed, len(indexed)).map(lambda it: (it[0], fn(*it[1]))).collect()
        return [result for _, result in sorted(out, key=lambda r: r[0])]

    def exact_clusters(self, work: Path, keys: list[str]) -> dict[int, list[int]]:
        """Groups of candidates with equal content hash, via a Spark ``groupBy``."""
        from pyspark.sql import functions as F

        from llmfoundry_lite.filtering.dedup import ORDINAL_SHIFT
        from llmfoundry_lite.filtering.dedup_pass import pass1_files

        files = pass1_files(work, keys)
        # ordinal = input index << 40 | row; the index comes from the file a row was read from.
        index = self.spark.createDataFrame([(Path(f).resolve().as_uri(), i) for i, f in enumerate(files)],
                                           "file string, shard long")
        df = (self.spark.read.parquet(*files).where(F.col("reason") == "")
              .withColumn("file", F.input_file_name()).join(F.broadcast(index), "file")
              .withColumn("ordinal", F.shiftleft(F.col("shard"), ORDINAL_SHIFT) + F.col("row")))
        groups = (df.groupBy("content_hash").agg(F.collect_list("ordinal").alias("members"))
                  .where(F.size("members") > 1).collect())
        return {min(g.members): sorted(g.members) for g in groups}

    def near_clusters(self, work: Path, keys: list[str], dropped: frozenset[int], cfg: DedupConfig) -> dict[int, list[int]]:
        """Components of band-bucket co-membership computed with a Spark shuffle (module docstring)."""
        from llmfoundry_lite.filtering.dedup_pass import signature_files

        sc = self.spark.sparkContext
        files = signature_files(work, keys)
        dropped_bc = sc.broadcast(dropped)
        edges = (sc.parallelize(files, max(1, len(files)))
                 .flatMap(lambda pair: _band_rows(pair, dropped_bc.value, cfg))
                 .groupByKey()
                 .flatMap(lambda kv: _star_edges(kv[1]))
                 .distinct()
                 .collect())
        uf = UnionFind()
        for a, b in sorted(edges):
            uf.union(a, b)
        return uf.clusters()

