"""Pass 2 on Spark: exact and near dedup as DataFrame jobs — nothing grows on the driver.

- **Candidates**: the pass-1 record files are read by executors; each row's ordinal is
  ``input index << 40 | row``, the index joined by the input key every row carries from a
  (key → index) table as small as the input list; the joined rows must number what pass 1 wrote.
- **Exact**: ``groupBy(content_hash)`` → smallest ordinal and size per hash → joined back.
- **Near**: executors load each file's signatures and emit one ``(band, band key, ordinal)``
  row per band; candidates dropped as exact duplicates are removed by an anti-join (no
  broadcast set); each bucket's smallest ordinal is joined back to give star edges
  ``(member, smallest)``; connected components of those edges come from the large-star /
  small-star iterations of Kiveris et al. (2014), as text-dedup's Spark MinHash computes them,
  here written with joins and ``min`` aggregations so no node's neighbour list is ever held in
  memory. Each round is written to ``work/cc/`` and read back, which cuts the lineage.
- **Decisions**: one DataFrame ``(key, row, reason, representative_id, cluster_size)`` with
  the same rules as the local engine (``dedup_pass``), joined with the representatives' ids and
  written partitioned by input key to ``work/dedup/key=<key>/``, which pass 3 reads per file.

Only aggregates come back to the driver: cluster counts and the size histograms.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmfoundry_lite.filtering.dedup import ORDINAL_SHIFT, band_keys
from llmfoundry_lite.spark_session import spark_path

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import FilterConfig

MAX_CC_ROUNDS = 64  # large/small-star converges in O(log^2 n) rounds; this guards a bug, not data


def _band_rows(item: tuple[int, str, str], cfg: Any) -> Iterator[tuple[int, int, bytes]]:
    from llmfoundry_lite.filtering.dedup_pass import load_signatures

    ords, sigs = load_signatures(*item)
    for ordinal, row in zip(ords.tolist(), band_keys(sigs, cfg), strict=True):
        for band, key in enumerate(row):
            yield ordinal, band, key.tobytes()


def _candidates(spark: Any, work: Path, units: list) -> Any:
    """Every pass-1 record as ``(ordinal, key, row, id, reason, content_hash)``; fails unless all were read.

    A row's file is the ``key`` it carries (``records.py``), joined with the (key → input index) table of
    this run — never a file name as Spark reports it, which need not be the name Python wrote."""
    from pyspark.sql import functions as F

    from llmfoundry_lite.filtering.dedup_pass import check_records

    files = [spark_path(work / "pass1" / f"{u.name}.parquet") for u in units]
    index = spark.createDataFrame(sorted({(u.file_key, u.file_index) for u in units}), "key string, shard long")
    docs = (spark.read.parquet(*files).select("key", "row", "id", "reason", "content_hash")
            .join(F.broadcast(index), "key")
            .withColumn("ordinal", F.shiftleft(F.col("shard"), ORDINAL_SHIFT) + F.col("row"))
            .select("ordinal", "key", "row", "id", "reason", "content_hash")).cache()
    check_records(docs.count(), units, "joined")
    return docs


def connected_components(spark: Any, edges: Any, scratch: Path) -> Any:
    """``(node, root)`` for every node of ``edges (a, b)`` that is not its component's smallest node."""
    from pyspark.sql import functions as F

    shutil.rmtree(scratch, ignore_errors=True)
    current = edges.select(F.greatest("a", "b").alias("a"), F.least("a", "b").alias("b")).where("a != b").distinct()
    current.write.parquet(spark_path(scratch / "edges"))
    current = spark.read.parquet(spark_path(scratch / "edges"))
    for step in range(MAX_CC_ROUNDS):
        # large star: every neighbour above a node is linked to the smallest of the node's closed neighbourhood
        sym = current.union(current.select(F.col("b").alias("a"), F.col("a").alias("b")))
        low = sym.groupBy("a").agg(F.least(F.min("b"), F.first("a")).alias("m"))
        large = (sym.join(low, "a").where(F.col("b") > F.col("a"))
                 .select(F.col("b").alias("a"), F.col("m").alias("b")).where("a != b"))
        # small star: a node and its smaller neighbours are linked to the smallest of them
        oriented = large.select(F.greatest("a", "b").alias("a"), F.least("a", "b").alias("b"))
        low = oriented.groupBy("a").agg(F.min("b").alias("m"))
        small = (oriented.join(low, "a").select(F.col("b").alias("a"), F.col("m").alias("b")).where("a != b")
                 .union(low.select("a", F.col("m").alias("b"))))
        path = scratch / f"round-{step:03d}"
        small.select(F.greatest("a", "b").alias("a"), F.least("a", "b").alias("b")).distinct() \
            .write.mode("overwrite").parquet(spark_path(path))
        nxt = spark.read.parquet(spark_path(path))
        if nxt.count() == current.count() and nxt.exceptAll(current).isEmpty():  # both are sets
            return nxt.select(F.col("a").alias("node"), F.col("b").alias("root"))
        current = nxt
    raise RuntimeError(f"connected components did not converge in {MAX_CC_ROUNDS} rounds")


def _near_members(spark: Any, cfg: FilterConfig, work: Path, units: list, exact_dropped: Any) -> Any:
    from pyspark.sql import functions as F

    from llmfoundry_lite.filtering.dedup_pass import signature_files

    files = signature_files(work, units)
    dedup_cfg = cfg.dedup
    bands = (spark.sparkContext.parallelize(files, max(1, len(files)))
             .flatMap(lambda item: _band_rows(item, dedup_cfg))
             .toDF("ordinal long, band int, bkey binary")
             .join(exact_dropped, "ordinal", "left_anti"))
    first = bands.groupBy("band", "bkey").agg(F.min("ordinal").alias("m"))
    edges = bands.join(first, ["band", "bkey"]).where(F.col("ordinal") != F.col("m")) \
        .select(F.col("ordinal").alias("a"), F.col("m").alias("b"))
    return connected_components(spark, edges, work / "cc")


def spark_dedup(spark: Any, cfg: FilterConfig, work: Path, units: list) -> dict:
    """Write ``work/dedup/key=<key>/`` decisions for every input file; return the summary counts.

    ``units``: ``dedup_pass.PassUnit`` of this run (pass-1 name, input file index, file key)."""
    from pyspark.sql import functions as F

    docs = _candidates(spark, work, units)
    cand = docs.where(F.col("reason") == "")
    empty = spark.createDataFrame([], "node long, root long")
    exact = empty
    if cfg.dedup.exact:
        firsts = cand.groupBy("content_hash").agg(F.min("ordinal").alias("root"), F.count("*").alias("n")) \
            .where("n > 1")
        exact = cand.join(firsts, "content_hash").where(F.col("ordinal") != F.col("root")) \
            .select(F.col("ordinal").alias("node"), "root")
    exact = exact.cache()
    near = empty
    if cfg.dedup.near:
        near = _near_members(spark, cfg, work, units, exact.select(F.col("node").alias("ordinal")))
    near = near.cache()
    sizes = {}
    for name, members in (("exact", exact), ("near", near)):
        sizes[name] = members.groupBy("root").agg((F.count("*") + 1).alias("size")).cache()
    dropped = (exact.join(sizes["exact"], "root").select("node", "root", "size", F.lit("exact_duplicate").alias("reason"))
               .union(near.join(sizes["near"], "root").select("node", "root", "size", F.lit("near_duplicate").alias("reason"))))
    # A representative row carries its exact cluster's size when it has one (the local rule), else the near one's.
    reps = (sizes["exact"].withColumn("p", F.lit(0)).union(sizes["near"].withColumn("p", F.lit(1)))
            .groupBy("root").agg(F.min(F.struct("p", "size")).alias("s"))
            .select(F.col("root").alias("node"), "root", F.col("s.size").alias("size"),
                    F.lit("representative").alias("reason"))
            .join(dropped.select("node"), "node", "left_anti"))
    ids = docs.select(F.col("ordinal").alias("root"), F.col("id").alias("representative_id"))
    decisions = (dropped.union(reps).join(ids, "root")
                 .join(docs.select(F.col("ordinal").alias("node"), "key", "row"), "node")
                 .select("key", "row", "reason", "representative_id", F.col("size").alias("cluster_size")))
    decisions.repartition("key").sortWithinPartitions("row").write.mode("overwrite") \
        .partitionBy("key").parquet(spark_path(work / "dedup"))
    summary = {
        "exact_clusters": sizes["exact"].count(),
        "near_clusters": sizes["near"].count(),
        "exact_cluster_sizes": {str(r["size"]): r["count"] for r in sizes["exact"].groupBy("size").count().orderBy("size").collect()},
        "near_cluster_sizes": {str(r["size"]): r["count"] for r in sizes["near"].groupBy("size").count().orderBy("size").collect()},
    }
    if len({u.source for u in units}) > 1:  # grouped by source pair: at most sources² rows reach the driver
        from llmfoundry_lite.filtering.dedup import ORDINAL_SHIFT

        files = spark.createDataFrame(sorted({(u.file_index, u.source) for u in units}), "file long, source string")
        pairs = (dropped.select(F.shiftright("node", ORDINAL_SHIFT).alias("file"), F.shiftright("root", ORDINAL_SHIFT).alias("rep"))
                 .join(files, "file").withColumnRenamed("source", "member_source")
                 .join(files.select(F.col("file").alias("rep"), F.col("source").alias("rep_source")), "rep")
                 .where("member_source != rep_source").groupBy("member_source", "rep_source").count().collect())
        summary["cross_source"] = {f"{r['member_source']} -> {r['rep_source']}": r["count"]
                                   for r in sorted(pairs, key=lambda r: (r["member_source"], r["rep_source"]))}
    docs.unpersist()
    shutil.rmtree(work / "cc", ignore_errors=True)
    return summary
