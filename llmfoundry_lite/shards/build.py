"""Build train/val MDS shards from Stack-format documents, in parallel and resumably.

``build_shards`` plans fixed units (``units.py``), runs the missing ones on
``workers`` processes (``writer.py``), merges each split's per-unit indexes in unit
order with streaming's ``merge_index`` and writes ``manifest.json`` last. Rerunning
with the same config and tokenizer reuses finished units — they are named by their
input file's identity, so an added, removed or replaced input redoes exactly its own
units (stale ones are deleted); after a crash it redoes only the units that have no
completion record. A new config or tokenizer rebuilds everything.

``build_shard_streams`` does the same for several shard sets over the same input (a source cut into
per-language streams) in one pass: each unit is read and tokenized once, for the streams that lack its
record; each stream keeps its own directory, fingerprint, reset and manifest, byte-identical to building
it alone. ``build_shards`` is that mechanism with one stream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from llmfoundry_lite.corpus.publish import publish, staging_dir
from llmfoundry_lite.corpus.units import Unit, plan_units
from llmfoundry_lite.corpus.uris import local_path
from llmfoundry_lite.shards.config import RUNTIME_KEYS, ShardsConfig, shards_fingerprint
from llmfoundry_lite.shards.manifest import LAYOUT_NOTE, MANIFEST_FILE, write_shards_manifest
from llmfoundry_lite.shards.pack import SPLIT_RULES, SPLITS
from llmfoundry_lite.shards.writer import UNITS_DIR, columns, unit_record_path, write_unit
from llmfoundry_lite.tokenizer.io import load_manifest, tokenizer_sha256

PLAN_FILE = "plan.json"


def _fingerprint(config_fp: str, units: list[Unit]) -> str:
    """Config + tokenizer, and the units (named by their inputs' identities): reuse only when all match."""
    blob = json.dumps([config_fp, [u.name for u in units]]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _reset_if_stale(out: Path, config_fp: str, units: list[Unit], overwrite: bool) -> None:
    """Keep finished units only if made with this exact config and tokenizer, and only units still planned."""
    plan = out / UNITS_DIR / PLAN_FILE
    if out.exists() and any(out.iterdir()) and not plan.is_file() and not (out / MANIFEST_FILE).is_file():
        raise ValueError(f"shards.output {out} exists and is not a shards directory; choose another output=")
    stale = overwrite or not plan.is_file() or json.loads(plan.read_text())["fingerprint"] != config_fp
    if stale:
        for name in (*SPLITS, UNITS_DIR):
            shutil.rmtree(out / name, ignore_errors=True)
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    live = {u.name for u in units}
    for split in SPLITS:
        (out / split / "index.json").unlink(missing_ok=True)  # the merged index is rebuilt from the live units
        for folder in (out / split).iterdir() if (out / split).is_dir() else []:
            if folder.is_dir() and (folder.suffix == ".tmp" or folder.name not in live):  # half-written or stale
                shutil.rmtree(folder)
    for record in (out / UNITS_DIR).glob("unit-*.json") if (out / UNITS_DIR).is_dir() else []:
        if record.stem not in live:
            record.unlink()
    for tmp in (out / UNITS_DIR).glob(".*.tmp") if (out / UNITS_DIR).is_dir() else []:  # died before its rename
        tmp.unlink()
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_text(json.dumps({"fingerprint": config_fp}))


def _scope(cfg: ShardsConfig) -> contextlib.AbstractContextManager:
    """The Spark application of an ``engine=spark`` pass (planning, writing and publishing run in it), else None."""
    if cfg.engine != "spark":
        return contextlib.nullcontext(None)
    from llmfoundry_lite.spark_session import SparkScope

    return SparkScope("llmfoundry_lite-shards", cfg.spark_master, cfg.spark_python)


def _run_units(tasks: list[tuple[Unit, list[ShardsConfig]]], cfg: ShardsConfig, map_fn: Callable | None) -> None:
    """Write every unit in ``tasks`` for its streams: one Spark task each (``map_fn``: the Spark application's
    map), in-process for one worker, else a pool of forked processes.

    The parent imports streaming (and with it torch) once before forking, so workers start
    in milliseconds instead of re-importing it; they encode with one tokenizer thread each
    because the processes are the parallelism.
    """
    def report(cfgs: list[ShardsConfig], recs: list[dict]) -> None:
        for c, rec in zip(cfgs, recs, strict=True):
            if c.progress:
                t, v = rec["train"], rec["val"]
                where = f" -> {c.output}" if len(cfgs) > 1 else ""
                print(f"  {rec['unit']}{where}: train {t['docs']} docs / {t['samples']} samples, "
                      f"val {v['docs']} docs / {v['samples']} samples", flush=True)

    if map_fn is not None:
        for (_, cfgs), recs in zip(tasks, map_fn(write_unit, tasks), strict=True):
            report(cfgs, recs)
        return
    if cfg.workers == 1 or len(tasks) <= 1:
        for unit, cfgs in tasks:
            report(cfgs, write_unit(unit, cfgs))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import streaming  # noqa: F401  (imported before the fork on purpose, see docstring)

    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        with ProcessPoolExecutor(min(cfg.workers, len(tasks)), mp_context=mp.get_context("fork")) as pool:
            for (_, cfgs), recs in zip(tasks, pool.map(write_unit, *zip(*tasks, strict=True)), strict=True):
                report(cfgs, recs)
    finally:
        if previous is None:
            os.environ.pop("TOKENIZERS_PARALLELISM")
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous


def _merge(out: Path, units: list[Unit]) -> None:
    from streaming.base.util import merge_index

    # merge_index logs a warning about its temp folder and the non-empty output dir on every call.
    logging.disable(logging.WARNING)
    try:
        for split in SPLITS:
            indexes = [str(out / split / u.name / "index.json") for u in units if (out / split / u.name / "index.json").is_file()]
            if indexes:
                merge_index(indexes, str(out / split), keep_local=True)
    finally:
        logging.disable(logging.NOTSET)


def _totals(records: list[dict]) -> dict:
    totals: dict = {s: {"docs": 0, "tokens": 0, "samples": 0, "pad_tokens": 0, "dropped_tokens": 0} for s in SPLITS}
    skips: dict[str, int] = {}
    for rec in records:
        for s in SPLITS:
            for k in totals[s]:
                totals[s][k] += rec[s][k]
        for k, v in rec["skips"].items():
            skips[k] = skips.get(k, 0) + v
    return {"splits": totals, "skips": skips}


def build_shards(cfg: ShardsConfig) -> dict:
    """Build (or reuse) the shards described by ``cfg``; return their manifest (+ ``reused``).

    An object-store ``output`` is built in ``staging`` and published when the shards are complete.
    """
    return build_shard_streams([cfg])[0]


# What every stream of one pass must share: the units read (input, unit_bytes), the tokenizer they are
# encoded with once, and how the pass is scheduled.
SHARED_KEYS = ("input", "tokenizer", "unit_bytes", "engine", "workers", "spark_master", "spark_python")


def build_shard_streams(cfgs: list[ShardsConfig]) -> list[dict]:
    """Build (or reuse) several shard sets over the same input in one pass; return their manifests in order.

    Each unit is read and tokenized once and written for every stream that lacks its record; a stream whose
    config or tokenizer changed is reset alone. Each ``output`` (and ``staging``) is the stream's own.
    """
    if not cfgs:
        raise ValueError("build_shard_streams needs at least one shards config")
    for key in SHARED_KEYS:
        values = {json.dumps(getattr(c, key)) for c in cfgs}
        if len(values) > 1:
            raise ValueError(f"shards.{key} differs between streams of one pass ({sorted(values)}); "
                             f"build them with separate build_shards calls")
    targets = [staging_dir(c.output, c.staging, "shards.output", shared=c.engine == "spark") for c in cfgs]
    tokenizer = local_path(cfgs[0].tokenizer)  # absolute, here on the driver: executors run in other directories
    if tokenizer is None:
        raise ValueError(f"shards.tokenizer must be a local or shared directory (or file://, dbfs:/), got {cfgs[0].tokenizer}")
    resolved = [dataclasses.replace(c, output=build_dir, staging="", tokenizer=tokenizer)
                for c, (build_dir, _) in zip(cfgs, targets, strict=True)]
    dirs = [c.output for c in resolved]
    if len(set(dirs)) < len(dirs):
        raise ValueError(f"streams of one pass must write different outputs, got {dirs}")
    with _scope(resolved[0]) as scope:  # one Spark application plans, writes and publishes
        map_fn = scope.map if scope is not None else None
        manifests = _build_streams(resolved, map_fn)
        for manifest, cfg, (_, remote) in zip(manifests, resolved, targets, strict=True):
            if remote is not None:
                manifest["published"] = publish(cfg.output, remote, marker=MANIFEST_FILE, exclude=(UNITS_DIR,),
                                                map_fn=map_fn)
    return manifests


def _build_streams(cfgs: list[ShardsConfig], map_fn: Callable | None) -> list[dict]:
    first = cfgs[0]
    tok_sha = tokenizer_sha256(first.tokenizer)
    units = plan_units(first.input, first.unit_bytes, map_fn=map_fn)  # footers and JSONL cuts read in tasks
    if not units:
        raise ValueError(f"shards.input {first.input} holds no documents")
    config_fps = [shards_fingerprint(cfg, tok_sha) for cfg in cfgs]
    fingerprints = [_fingerprint(config_fp, units) for config_fp in config_fps]
    reused = [_reusable(cfg, fp) for cfg, fp in zip(cfgs, fingerprints, strict=True)]
    todo: list[set[str]] = []  # per stream, the units it lacks
    for cfg, config_fp, done in zip(cfgs, config_fps, reused, strict=True):
        if done is not None:
            todo.append(set())
            continue
        _reset_if_stale(Path(cfg.output), config_fp, units, cfg.overwrite)
        todo.append({u.name for u in units if not unit_record_path(Path(cfg.output), u).is_file()})
    tasks = [(u, [c for c, names in zip(cfgs, todo, strict=True) if u.name in names]) for u in units]
    start = time.perf_counter()
    _run_units([(u, streams) for u, streams in tasks if streams], first, map_fn)
    seconds = time.perf_counter() - start
    return [done if done is not None else _finish(cfg, units, fp, tok_sha, len(names), seconds)
            for cfg, fp, done, names in zip(cfgs, fingerprints, reused, todo, strict=True)]


def _reusable(cfg: ShardsConfig, fingerprint: str) -> dict | None:
    """The finished manifest of ``cfg.output`` if it was made with this fingerprint (and no overwrite)."""
    done_manifest = Path(cfg.output) / MANIFEST_FILE
    if done_manifest.is_file() and not cfg.overwrite:
        old = json.loads(done_manifest.read_text())
        if old.get("fingerprint") == fingerprint:
            return {**old, "reused": True}
    return None


def _finish(cfg: ShardsConfig, units: list[Unit], fingerprint: str, tok_sha: str, units_run: int,
            seconds: float) -> dict:
    """Check one stream's totals, merge its indexes and write its manifest (last)."""
    out = Path(cfg.output)
    records = [json.loads(unit_record_path(out, u).read_text()) for u in units]
    totals = _totals(records)
    if totals["splits"]["train"]["samples"] == 0:
        raise ValueError(f"no training samples were produced from {cfg.input}")
    if cfg.val_fraction > 0 and totals["splits"]["val"]["samples"] == 0:
        raise ValueError(f"no document fell into the val split (val_fraction={cfg.val_fraction}); raise val_fraction")
    _merge(out, units)
    tman = load_manifest(cfg.tokenizer)
    manifest = {
        "fingerprint": fingerprint,
        "tokenizer_sha256": tok_sha,
        "tokenizer_dir": cfg.tokenizer,
        "vocab_size": tman["vocab_size"],
        "max_seq_len": cfg.max_seq_len,
        "eos_id": tman["eos_id"],
        "pad_id": tman["pad_id"],
        "columns": columns(tman["vocab_size"], cfg.max_seq_len),
        "split_rule": {"split_by": cfg.split_by, "val_fraction": cfg.val_fraction, "seed": cfg.split_seed,
                       "rule": SPLIT_RULES[cfg.split_by]},
        "units": len(units),
        **totals,
        "layout": LAYOUT_NOTE,
        "source_config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RUNTIME_KEYS},
    }
    write_shards_manifest(out, manifest)
    return {**manifest, "reused": False, "seconds_this_run": round(seconds, 2), "units_run": units_run}
