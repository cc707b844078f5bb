"""Build train/val MDS shards from Stack-format documents, in parallel and resumably.

``build_shards`` plans fixed units (``units.py``), runs the missing ones on
``workers`` processes (``writer.py``), merges each split's per-unit indexes in unit
order with streaming's ``merge_index`` and writes ``manifest.json`` last. Rerunning
with the same config and tokenizer reuses finished units — they are named by their
input file's identity, so an added, removed or replaced input redoes exactly its own
units (stale ones are deleted); after a crash it redoes only the units that have no
completion record. A new config or tokenizer rebuilds everything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
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


def _run_units(todo: list[Unit], cfg: ShardsConfig) -> None:
    """Write every unit in ``todo``: one Spark task each (``engine=spark``), in-process for one worker,
    else a pool of forked processes.

    The parent imports streaming (and with it torch) once before forking, so workers start
    in milliseconds instead of re-importing it; they encode with one tokenizer thread each
    because the processes are the parallelism.
    """
    def report(rec: dict) -> None:
        if cfg.progress:
            t, v = rec["train"], rec["val"]
            print(f"  {rec['unit']}: train {t['docs']} docs / {t['samples']} samples, "
                  f"val {v['docs']} docs / {v['samples']} samples", flush=True)

    if cfg.engine == "spark":
        from llmfoundry_lite.spark_session import SparkScope

        with SparkScope("llmfoundry_lite-shards", cfg.spark_master, cfg.spark_python) as scope:
            for rec in scope.map(write_unit, [(u, cfg) for u in todo]):
                report(rec)
        return
    if cfg.workers == 1 or len(todo) <= 1:
        for unit in todo:
            report(write_unit(unit, cfg))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import streaming  # noqa: F401  (imported before the fork on purpose, see docstring)

    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        with ProcessPoolExecutor(min(cfg.workers, len(todo)), mp_context=mp.get_context("fork")) as pool:
            for rec in pool.map(write_unit, todo, [cfg] * len(todo)):
                report(rec)
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
    build_dir, remote = staging_dir(cfg.output, cfg.staging, "shards.output", shared=cfg.engine == "spark")
    tokenizer = local_path(cfg.tokenizer)  # absolute, here on the driver: executors run in other directories
    if tokenizer is None:
        raise ValueError(f"shards.tokenizer must be a local or shared directory (or file://, dbfs:/), got {cfg.tokenizer}")
    manifest = _build_shards(dataclasses.replace(cfg, output=build_dir, staging="", tokenizer=tokenizer))
    if remote is not None:
        manifest["published"] = publish(build_dir, remote, marker=MANIFEST_FILE, exclude=(UNITS_DIR,))
    return manifest


def _build_shards(cfg: ShardsConfig) -> dict:
    out = Path(cfg.output)
    tok_sha = tokenizer_sha256(cfg.tokenizer)
    units = plan_units(cfg.input, cfg.unit_bytes)
    if not units:
        raise ValueError(f"shards.input {cfg.input} holds no documents")
    config_fp = shards_fingerprint(cfg, tok_sha)
    fingerprint = _fingerprint(config_fp, units)
    done_manifest = out / MANIFEST_FILE
    if done_manifest.is_file() and not cfg.overwrite:
        old = json.loads(done_manifest.read_text())
        if old.get("fingerprint") == fingerprint:
            return {**old, "reused": True}
    _reset_if_stale(out, config_fp, units, cfg.overwrite)
    todo = [u for u in units if not unit_record_path(out, u).is_file()]
    start = time.perf_counter()
    _run_units(todo, cfg)
    seconds = time.perf_counter() - start
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
    return {**manifest, "reused": False, "seconds_this_run": round(seconds, 2), "units_run": len(todo)}
