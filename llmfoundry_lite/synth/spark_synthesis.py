"""``engine=spark`` for synthesis: the local stages as Spark jobs, the same output, counts on the driver.

- **Extraction**: one Spark task per unit (``collect.unit_counts``): a unit extracted by an earlier
  attempt is reused, others are extracted and kept under ``<output>/work/extract`` as locally.
  Only counts come back; the pairs stay in the unit files, which executors read back, each pair
  numbered ``unit index << 32 | position`` — the local engine's input order.
- **Decontamination**: per partition, the filter stage's matcher (built once per executor process).
- **Near-dedup** (the local rule of ``corpus_checks``, distributed): executors compute each pair's
  MinHash signature; pairs with identical signatures collapse onto their first; the rest emit one
  row per LSH band (the local bucket keys); each bucket's smallest ordinal is joined back, giving
  star edges ``(first, member)`` — at most one per member and band, so linear in bucket size
  (``candidate_pairs``); an edge whose signatures agree on at least the threshold's share of values
  is kept; connected components of the edges come from the filter stage's large/small-star joins;
  each component is walked in input order on one executor — a pair is dropped when an earlier
  *kept* pair is its neighbour (its neighbours before it are its buckets' firsts, as locally). A
  pair identical to an earlier one takes that one's fate (it, or what dropped it).
- **Verification**: each partition opens its own sandbox and runs its pairs' programs; per-partition
  ``VerifyTally`` objects merge into the ``verify`` section.
- **Split**: pairs per group are counted by Spark and walked in ``split.group_key`` order with
  ``toLocalIterator`` (one partition at a time on the driver); the chosen groups are written to
  ``work/split/heldout.jsonl`` and joined back.
- **Write**: rows sorted by number, each partition writes its part of ``instruct`` / ``train`` /
  ``heldout``, and the driver concatenates the parts in order (a stream copy: constant memory).

- **Self-align** (``model=``): inside the verification tasks, each partition's instructions are sampled
  by the model (loaded once per executor process; ``self_align.device`` names the executor's device)
  and judged in that task's sandbox; a self-aligned row follows its pair, as locally. Samples are
  seeded per pair, so the rows are the local engine's.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmfoundry_lite.filtering.list_files import read_list_files
from llmfoundry_lite.spark_session import attempt_tmp, spark_path
from llmfoundry_lite.synth.collect import load_unit, merge_counts, plan_extract, unit_counts
from llmfoundry_lite.synth.outcome import Outcome, Stopwatch
from llmfoundry_lite.synth.report import RowTally
from llmfoundry_lite.synth.self_align import ORIGIN as SELF_ALIGNED
from llmfoundry_lite.synth.self_align import self_align_pairs
from llmfoundry_lite.synth.split import group_key, walk
from llmfoundry_lite.synth.verify_stage import VerifyTally

if TYPE_CHECKING:
    from llmfoundry_lite.sandbox import Sandbox
    from llmfoundry_lite.synth.config import SynthConfig
    from llmfoundry_lite.synth.pairs import Pair

UNIT_SHIFT = 32
"""A pair's number: its unit's index shifted by this, plus its position in the unit."""
OUTPUTS = ("instruct", "train", "heldout")


def _unit_pairs(item: tuple[int, str]) -> Iterator[tuple[int, Pair]]:
    index, path = item
    for j, pair in enumerate(load_unit(Path(path))):
        yield index << UNIT_SHIFT | j, pair


def _decontam(items: Iterable[tuple[int, Pair]], cfg: Any, contents: Any) -> Iterator[tuple[int, tuple[Pair, str | None]]]:
    from llmfoundry_lite.filtering.decontam import decontaminator

    matcher = decontaminator(cfg, contents.value) if cfg.enabled else None  # the files' bytes, broadcast by the driver
    for ordinal, pair in items:
        hit = matcher.find(pair.program) if matcher is not None else None
        yield ordinal, (pair, hit.benchmark if hit is not None else None)


def _signatures(items: Iterable[tuple[int, Pair]]) -> Iterator[tuple[int, bytearray]]:
    from llmfoundry_lite.filtering.config import DedupConfig
    from llmfoundry_lite.filtering.dedup import minhash_signature

    dedup = DedupConfig()  # the local rule's settings (corpus_checks.near_duplicates)
    for ordinal, pair in items:
        sig = minhash_signature(pair.program, dedup)
        if sig is not None:  # no tokens: no signature, never a duplicate (as locally)
            yield ordinal, bytearray(sig.tobytes())


def _band_rows(row: Any, shape: Any) -> Iterator[tuple[int, bytearray, int]]:
    import numpy as np

    from llmfoundry_lite.synth.corpus_checks import bucket_keys

    sig = np.frombuffer(bytes(row["sig"]), dtype=np.uint32)
    for band, key in enumerate(bucket_keys(sig, shape)):
        yield band, bytearray(key), row["ordinal"]


def _similar(row: Any, threshold: float) -> bool:
    import numpy as np

    from llmfoundry_lite.synth.corpus_checks import signatures_agree

    a, b = np.frombuffer(row["sig_a"], dtype=np.uint32), np.frombuffer(row["sig_b"], dtype=np.uint32)
    return signatures_agree(a, b, threshold)


def _greedy(component: tuple[int, Iterable[tuple[int, int]]]) -> Iterator[tuple[int, int]]:
    """``(pair, duplicate_of)`` for the dropped pairs of one component, walked in input order."""
    neighbours: dict[int, list[int]] = {}
    for a, b in component[1]:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    kept: set[int] = set()
    for node in sorted(neighbours):
        earlier = [m for m in neighbours[node] if m < node and m in kept]
        if earlier:
            yield node, min(earlier)
        else:
            kept.add(node)


def candidate_pairs(distinct: Any, threshold: float) -> Any:
    """DataFrame ``(a, b)`` of the pairs to compare: each LSH bucket's first (smallest) ordinal ``a`` with
    each other member ``b`` — star edges, at most one per member and band (``corpus_checks.lsh_shape``).

    ``distinct``: ``(ordinal, sig)`` rows with pairwise different signatures."""
    from pyspark.sql import functions as F

    from llmfoundry_lite.filtering.config import DedupConfig
    from llmfoundry_lite.synth.corpus_checks import lsh_config

    shape = lsh_config(threshold, DedupConfig())
    bands = distinct.rdd.flatMap(lambda r: _band_rows(r, shape)).toDF("band int, bkey binary, ordinal long")
    first = bands.groupBy("band", "bkey").agg(F.min("ordinal").alias("a"))
    return (bands.join(first, ["band", "bkey"]).where(F.col("ordinal") != F.col("a"))
            .select("a", F.col("ordinal").alias("b")).distinct())


def near_duplicate_pairs(spark: Any, pairs: Any, threshold: float, scratch: Path) -> Any:
    """DataFrame ``(ordinal, duplicate_of)`` of the pairs the local rule drops as near-duplicates."""
    from pyspark.sql import functions as F

    from llmfoundry_lite.filtering.spark_dedup import connected_components

    sigs = pairs.mapPartitions(_signatures).toDF("ordinal long, sig binary")
    firsts = sigs.groupBy("sig").agg(F.min("ordinal").alias("first"))
    same = (sigs.join(firsts, "sig").where(F.col("ordinal") != F.col("first"))
            .select("ordinal", "first"))
    distinct = firsts.select(F.col("first").alias("ordinal"), "sig")
    distinct.write.mode("overwrite").parquet(spark_path(scratch / "sigs"))
    distinct = spark.read.parquet(spark_path(scratch / "sigs"))
    candidates = candidate_pairs(distinct, threshold)
    left = distinct.select(F.col("ordinal").alias("a"), F.col("sig").alias("sig_a"))
    right = distinct.select(F.col("ordinal").alias("b"), F.col("sig").alias("sig_b"))
    edges = (candidates.join(left, "a").join(right, "b").rdd.filter(lambda r: _similar(r, threshold))
             .map(lambda r: (r["a"], r["b"])).toDF("a long, b long"))
    edges.write.mode("overwrite").parquet(spark_path(scratch / "edges"))
    edges = spark.read.parquet(spark_path(scratch / "edges"))
    members = connected_components(spark, edges, scratch / "cc")  # (node, root) for every non-root node
    roots = members.union(members.select(F.col("root").alias("node"), "root")).distinct()
    dropped = (edges.join(roots.select(F.col("node").alias("a"), "root"), "a").rdd
               .map(lambda r: (r["root"], (r["a"], r["b"]))).groupByKey().flatMap(_greedy)
               .toDF("ordinal long, duplicate_of long"))
    # a copy of an earlier signature: dropped by that one when it is kept, else by what dropped it
    copies = (same.join(dropped.select(F.col("ordinal").alias("first"), F.col("duplicate_of").alias("via")),
                        "first", "left")
              .select("ordinal", F.coalesce("via", "first").alias("duplicate_of")))
    return dropped.union(copies)


_SAMPLERS: dict[str, tuple] = {}
"""Self-align samplers loaded in this executor process, by model path (Spark reuses its Python workers)."""


def _sampler(cfg: SynthConfig) -> tuple:
    from llmfoundry_lite.synth.self_align import load_sampler

    assert cfg.model is not None
    if cfg.model not in _SAMPLERS:
        _SAMPLERS[cfg.model] = load_sampler(cfg)
    return _SAMPLERS[cfg.model]


def merge_self_align(a: dict | None, b: dict | None) -> dict | None:
    """Two partitions' ``self_align`` sections as one: counts and seconds added, settings kept."""
    if a is None or b is None:
        return a or b
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            both = Counter(a[key])
            both.update(value)
            out[key] = dict(sorted(both.items())) if key != "seconds" else {k: round(v, 3) for k, v in both.items()}
        elif isinstance(value, int | float) and not isinstance(value, bool) and key not in SELF_ALIGN_SETTINGS:
            out[key] = a[key] + value
    return out


SELF_ALIGN_SETTINGS = ("k", "temperature", "top_p", "seed")
"""Numbers of the ``self_align`` section that are settings, not counts."""


def _verify(items: Iterable[tuple[int, Pair]], cfg: SynthConfig) -> Iterator[tuple]:
    """One partition's verification (and self-align with ``model``): ``("pair", (ordinal, 0 | 1), pair)``
    items — 1 for a self-aligned row, which follows its pair — then one ``("tally", VerifyTally, self_align)``."""
    from llmfoundry_lite.sandbox import Sandbox
    from llmfoundry_lite.synth.verify import build_program
    from llmfoundry_lite.synth.verify_cache import run_cached
    from llmfoundry_lite.synth.verify_stage import verify_cache_dir

    todo = sorted(items, key=lambda kv: kv[0])  # input order: the tally lists the first failures
    runnable = [k for k, (_, p) in enumerate(todo) if p.untestable is None]
    tally = VerifyTally()
    self_align = None
    sampling = cfg.model is not None and bool(todo)
    # a partition with nothing to run starts no sandbox
    with Sandbox(cfg.sandbox, workers=1) if runnable or sampling else nullcontext() as sandbox:
        results: list = []
        if runnable:
            results, tally.reused = run_cached([build_program(todo[k][1].program, todo[k][1].tests)
                                                for k in runnable], sandbox, 1, verify_cache_dir(cfg))
        outcome = dict(zip(runnable, results, strict=True))
        kept = [k for i, (ordinal, pair) in enumerate(todo)
                if (k := tally.add(ordinal, pair, outcome.get(i), cfg.keep_untested))]
        if sampling:
            sampler, over_context = _sampler(cfg)
            kept, self_align = self_align_pairs([p for _, p in todo], kept, cfg, sandbox, sampler, over_context)
    ordinal_of = {pair.source_id: ordinal for ordinal, pair in todo}
    for pair in kept:
        if pair.origin == SELF_ALIGNED:  # source_id is its pair's + "#sample<i>"
            yield "pair", (ordinal_of[pair.source_id.rsplit("#sample", 1)[0]], 1), pair
        else:
            yield "pair", (ordinal_of[pair.source_id], 0), pair
    yield "tally", tally, self_align


def _write_part(index: int, rows: Iterable[tuple[int, tuple[Pair, bool]]], work: str) -> Iterator[tuple]:
    """Write one sorted partition's rows to ``work/part-<index>.<output>.jsonl``; yields its index, its
    ``RowTally`` and its heldout row count. Each attempt writes files of its own (``attempt_tmp``: named by
    its ``taskAttemptId``; ``attemptNumber`` restarts when a stage is resubmitted) and renames them at the
    end, so a retried or speculative copy of the task never interleaves with another."""
    final = {name: Path(work) / f"part-{index:06d}.{name}.jsonl" for name in OUTPUTS}
    tmp = {name: attempt_tmp(path) for name, path in final.items()}
    files = {name: open(path, "w", encoding="utf-8") for name, path in tmp.items()}
    tally, heldout_rows = RowTally(), 0
    try:
        for _, (pair, heldout) in rows:
            row = pair.row()
            line = json.dumps(row, ensure_ascii=False) + "\n"  # as the local engine's writer
            files["instruct"].write(line)
            files["heldout" if heldout else "train"].write(line)
            tally.add(row)
            heldout_rows += heldout
    finally:
        for f in files.values():
            f.close()
    for name in OUTPUTS:
        tmp[name].replace(final[name])
    yield index, tally, heldout_rows


def _concatenate(work: Path, parts: list[int], out: Path) -> None:
    for name in OUTPUTS:
        tmp = out / f"{name}.jsonl.tmp"
        with open(tmp, "wb") as dst:
            for index in parts:
                with open(work / f"part-{index:06d}.{name}.jsonl", "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
        tmp.replace(out / f"{name}.jsonl")


def spark_synthesis(cfg: SynthConfig, sandbox: Sandbox, watch: Stopwatch) -> Outcome:
    """Run every stage on Spark; the rows go to ``cfg.output`` as with the local engine."""
    from pyspark import StorageLevel

    from llmfoundry_lite.spark_session import SparkScope

    out = Path(cfg.output)
    scratch = out / "work" / "spark"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    with SparkScope("llmfoundry_lite-synth", cfg.spark_master, cfg.spark_python) as scope:
        spark, sc = scope.spark, scope.spark.sparkContext
        plan = plan_extract(cfg)
        done = scope.map(unit_counts, [plan.task(i, cfg) for i in range(len(plan.units))])
        counts = merge_counts([r for _, r, _ in done], sum(reused for reused, _, _ in done))
        dropped = counts.pop("dropped")
        watch.lap("extract")
        units = [(i, str(plan.paths[i])) for i, (_, _, n) in enumerate(done) if n]
        pairs = sc.parallelize(units, max(1, len(units))).flatMap(_unit_pairs)
        decontam = cfg.decontam
        # The benchmark files, read here and broadcast: an executor never opens a path that names a driver's file.
        contents = sc.broadcast(read_list_files(decontam.files if decontam.enabled else []))
        flagged = pairs.mapPartitions(lambda it: _decontam(it, decontam, contents)).persist(StorageLevel.MEMORY_AND_DISK)
        by_benchmark = Counter(flagged.map(lambda kv: kv[1][1]).filter(lambda b: b is not None).countByValue())
        dropped["decontaminated"] = sum(by_benchmark.values())
        clean = flagged.filter(lambda kv: kv[1][1] is None).mapValues(lambda v: v[0])
        watch.lap("decontam")
        duplicates = near_duplicate_pairs(spark, clean, cfg.near_dup_threshold, scratch)
        duplicates.write.parquet(spark_path(scratch / "duplicates"))
        duplicates = spark.read.parquet(spark_path(scratch / "duplicates"))
        dropped["near_duplicate"] = duplicates.count()
        survivors = clean.subtractByKey(duplicates.rdd.map(lambda r: (r["ordinal"], None)))
        watch.lap("near_dup")
        verified = survivors.mapPartitions(lambda it: _verify(it, cfg)).persist(StorageLevel.MEMORY_AND_DISK)
        tallies = verified.filter(lambda t: t[0] == "tally")
        tally = tallies.map(lambda t: t[1]).fold(VerifyTally(), VerifyTally.merge)
        self_align = tallies.map(lambda t: t[2]).fold(None, merge_self_align)
        dropped.update(tally.dropped)
        kept = verified.filter(lambda t: t[0] == "pair").map(lambda t: (t[1], t[2])) \
            .persist(StorageLevel.MEMORY_AND_DISK)
        n_rows = kept.count()
        flagged.unpersist()
        watch.lap("verify")
        seed = cfg.seed
        sizes = kept.map(lambda kv: (kv[1].group, 1)).reduceByKey(lambda a, b: a + b) \
            .map(lambda gn: (group_key(seed, gn[0]), gn)).sortByKey().values()
        chosen_path = scratch / "split" / "heldout.jsonl"
        chosen_path.parent.mkdir(parents=True)
        n_heldout_groups = 0
        with open(chosen_path, "w", encoding="utf-8") as f:
            for group in walk(sizes.toLocalIterator(), round(cfg.heldout_fraction * n_rows)):
                f.write(json.dumps(group) + "\n")
                n_heldout_groups += 1
        n_groups = sizes.count()
        heldout = sc.textFile(str(chosen_path)).map(lambda line: (json.loads(line), True))
        rows = (kept.map(lambda kv: (kv[1].group, kv)).leftOuterJoin(heldout)
                .map(lambda g: (g[1][0][0], (g[1][0][1], bool(g[1][1]))))  # (ordinal, (pair, heldout))
                .sortByKey(numPartitions=max(1, kept.getNumPartitions())))
        work = scratch / "write"
        work.mkdir()
        work_str = str(work)
        written = rows.mapPartitionsWithIndex(lambda i, it: _write_part(i, it, work_str)).collect()
        _concatenate(work, sorted(i for i, _, _ in written), out)
        rows_tally = RowTally()
        for _, part, _ in written:
            rows_tally.merge(part)
        n_heldout = sum(n for _, _, n in written)
        origins = Counter(kept.map(lambda kv: kv[1].origin).countByValue())
        kept.unpersist()
        verified.unpersist()
    shutil.rmtree(scratch, ignore_errors=True)
    watch.lap("write")
    if self_align is not None:  # on Spark it runs inside the verification tasks: its task seconds, summed
        watch.seconds["self_align"] = round(sum(self_align["seconds"].values()), 3)
    return Outcome(counts, dropped, by_benchmark, tally.section(sandbox, cfg), kept=tally.kept, origins=origins,
                   train=n_rows - n_heldout, heldout=n_heldout, self_align=self_align,
                   groups={"train": n_groups - n_heldout_groups, "heldout": n_heldout_groups},
                   summary=rows_tally.summary(cfg))

