"""The filter stage end to end: ``run_filter(cfg)`` → ``kept/``, ``rejected/``, ``stats.json``, ``report/``.

Three passes, each resumable:

1. per input file, in parallel (``shards.filter_shard``): license and opt-out lists, size cap,
   auto-generated rules, line heuristics, parse check, benchmark decontamination, PII
   redaction, exact hash and MinHash signature — decisions only, no content written;
2. once, globally (``dedup_pass.global_dedup``): exact and near-duplicate clusters, one
   representative each (smallest input-order ordinal);
3. per input file, in parallel (``shards.finalize_shard``): re-read it and write
   ``kept/part-NNNNN.parquet`` and ``rejected/part-NNNNN.parquet`` (with ``reason``).

Every unit leaves a completion marker under ``<output>/work/`` keyed by its input file's
identity (path, size, mtime). A rerun of the same config skips finished units; after an input
file is added, removed or replaced it redoes pass 1 for exactly the new or changed files,
pass 2 (global by nature), and pass 3 for the files whose decisions changed. An output
directory made with a different config is refused. ``work/pass1`` is kept after the run
(decisions and ~1 KB of signature per candidate) so that such a rerun needs no other file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from llmfoundry_lite.config import to_yaml
from llmfoundry_lite.corpus.identity import identity_key, inputs_key
from llmfoundry_lite.corpus.publish import publish, staging_dir
from llmfoundry_lite.corpus.readers import list_input_shards
from llmfoundry_lite.corpus.units import MapFn, Unit, number_units, plan_files
from llmfoundry_lite.filtering.config import FilterConfig, config_hash, fingerprint, source_config, source_digest
from llmfoundry_lite.filtering.dedup_pass import PassUnit, global_dedup
from llmfoundry_lite.filtering.documents import list_file_paths
from llmfoundry_lite.filtering.list_files import read_list_files
from llmfoundry_lite.filtering.shards import file_kinds, filter_shard, finalize_shard

CLAIM_FILE = "filter_config.json"


class OutputDirError(ValueError):
    """The output directory belongs to another config or to something else entirely."""


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}


def claim_output(cfg: FilterConfig, out: Path, as_given: FilterConfig | None = None) -> None:
    """Record ``cfg`` in ``out``, or refuse when ``out`` was made by a different config.

    ``filter_config.yaml`` shows ``as_given`` (the config with the user's output URI and staging).
    """
    claim = out / CLAIM_FILE
    if claim.exists():
        previous = json.loads(claim.read_text())
        if previous["config_hash"] == config_hash(cfg):
            return
        old, new = _flatten(previous["config"]), _flatten(fingerprint(cfg))
        diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        raise OutputDirError(
            f"output directory {out} was produced by a different filter config (differs at: {', '.join(diff)}); "
            f"rerun with the same config to resume, or choose another --output (or delete {out})"
        )
    if out.exists() and any(out.iterdir()):
        raise OutputDirError(f"output directory {out} is not empty and holds no {CLAIM_FILE}; choose an empty or new directory")
    out.mkdir(parents=True, exist_ok=True)
    claim.write_text(json.dumps({"config_hash": config_hash(cfg), "config": fingerprint(cfg)}, indent=1, default=str))
    (out / "filter_config.yaml").write_text(to_yaml(as_given or cfg))


def make_engine(cfg: FilterConfig, progress: bool) -> Any:
    """The executor named by ``cfg.engine`` (explicit dispatch; Spark is imported only when chosen)."""
    if cfg.engine == "local":
        from llmfoundry_lite.filtering.local_engine import LocalEngine

        return LocalEngine(cfg.workers, progress)
    if cfg.engine == "spark":
        from llmfoundry_lite.filtering.spark_engine import SparkEngine

        return SparkEngine(cfg.spark_master, cfg.spark_python, progress)
    raise ValueError(f"unknown engine {cfg.engine!r}")


def _merge_counts(parts: list[dict], key: str) -> Counter:
    total: Counter = Counter()
    for p in parts:
        total.update(p.get(key, {}))
    return total


def _languages(first: list[dict], final: list[dict]) -> dict[str, dict[str, int]]:
    langs: dict[str, dict[str, int]] = {}
    for part, (files_key, bytes_key), key in ((first, ("files_before", "bytes_before"), "lang_before"),
                                              (final, ("files_after", "bytes_after"), "lang_after")):
        for p in part:
            for lang, (files, size) in p[key].items():
                row = langs.setdefault(lang, {"files_before": 0, "bytes_before": 0, "files_after": 0, "bytes_after": 0})
                row[files_key] += files
                row[bytes_key] += size
    return dict(sorted(langs.items(), key=lambda kv: -kv[1]["bytes_before"]))


def build_stats(cfg: FilterConfig, first: list[dict], dedup: dict, final: list[dict]) -> dict:
    """Aggregate per-shard counts into the ``stats.json`` layout; checks kept + rejected + skipped == seen."""
    rejected, skipped = _merge_counts(final, "rejected"), _merge_counts(first, "skipped")
    decontaminated = _merge_counts(first, "decontaminated")
    by_lang: dict[str, Counter] = {}
    for p in final:
        for reason, langs in p["rejected_by_lang"].items():
            by_lang.setdefault(reason, Counter()).update(langs)
    stats = {
        "config_hash": config_hash(cfg),
        "units": len(first),
        "seen": sum(p["seen"] for p in first),
        "kept": sum(p["kept"] for p in final),
        "rejected": sum(rejected.values()),
        "skipped": sum(skipped.values()),
        "rejected_by_reason": dict(rejected.most_common()),
        "skipped_by_reason": dict(skipped.most_common()),
        "rejected_by_reason_and_lang": {r: dict(c.most_common()) for r, c in sorted(by_lang.items())},
        "languages": _languages(first, final),
        "pii": dict(_merge_counts(final, "pii")),
        "decontaminated_by_benchmark": dict(decontaminated.most_common()),
        "dedup": {k: v for k, v in dedup.items() if k != "inputs"},
        "thresholds": {"heuristics": fingerprint(cfg)["heuristics"]},
    }
    if stats["kept"] + stats["rejected"] + stats["skipped"] != stats["seen"]:
        raise RuntimeError(f"document accounting broken: kept {stats['kept']} + rejected {stats['rejected']} + "
                           f"skipped {stats['skipped']} != seen {stats['seen']}")
    return stats


def _draw_report(out: Path, stats: dict, cfg: FilterConfig) -> list[str]:
    from llmfoundry_lite.filtering.report import write_report

    return write_report(out, stats, cfg)


def _write_stats(out: Path, stats: dict) -> None:
    tmp = out / "stats.json.tmp"
    tmp.write_text(json.dumps(stats, indent=1))
    os.replace(tmp, out / "stats.json")


def _finished(out: Path, cfg: FilterConfig, inputs: str) -> dict | None:
    """The stats of a finished run over exactly these inputs, or None (stale stats are removed)."""
    path = out / "stats.json"
    if not path.exists():
        return None
    stats = json.loads(path.read_text())
    if stats.get("inputs_key") != inputs:
        path.unlink()  # made from other input files: every unit below is re-checked by its own key
        return None
    if cfg.report and "report" not in stats:  # finished earlier with report=false
        stats["report"] = _draw_report(out, stats, cfg)
        _write_stats(out, stats)
    return stats


def _prune(work: Path, out: Path, units: list[Unit]) -> None:
    """Remove work and output parts that belong to units no longer in the plan."""
    live = {u.name for u in units}
    for f in (work / "pass1").iterdir():
        if f.name.split(".", 1)[0] not in live:
            f.unlink()
    for sub in ("kept", "rejected"):
        for f in (out / sub).glob("part-*.parquet"):
            if int(f.stem.split("-")[1]) >= len(units):
                f.unlink()
    for f in (work / "final").glob("*.json"):
        if int(f.stem) >= len(units):
            f.unlink()
    for folder in (out / "kept", out / "rejected", work / "final"):  # what attempts that died left half-written
        for f in folder.glob(".*.tmp"):
            f.unlink()


def run_filter(cfg: FilterConfig, progress: bool = True) -> dict:
    """Run (or resume) the filter stage; returns the stats dict also written to ``<output>/stats.json``.

    An object-store ``output`` is built in ``staging`` and published when the run has finished.
    """
    build_dir, remote = staging_dir(cfg.output, cfg.staging, "output", shared=cfg.engine == "spark")
    with make_engine(cfg, progress) as engine:  # one engine plans, runs the passes and publishes
        stats = _run_filter(dataclasses.replace(cfg, output=build_dir, staging=""), engine, as_given=cfg)
        if remote is not None:  # the counts are for the caller; stats.json stays what a local run writes
            published = publish(build_dir, remote, marker="stats.json", exclude=("work",),
                                map_fn=_task_map(cfg, engine, "publish"))
            stats = {**stats, "published": published}
    return stats


def _task_map(cfg: FilterConfig, engine: Any, desc: str) -> MapFn | None:
    """The engine's map for planning and publishing on Spark, so that the driver reads no input and uploads no
    file; None for a local run: that work stays in this process (the pool is sized by pass 1's map)."""
    return partial(engine.map, desc=desc) if cfg.engine == "spark" else None


class SourcePlan(NamedTuple):
    """One source of the run ('' when the run has plain ``input``): its inputs and effective config."""

    name: str
    inputs: list[str]
    cfg: FilterConfig
    tag: str  # hash of its overrides, part of its units' names ('' for none)
    layout: str = "auto"  # how its directories are read (``list_input_shards``)


def source_plans(cfg: FilterConfig) -> list[SourcePlan]:
    """The run's sources in priority order, each with the config its tasks run under."""
    if not cfg.sources:
        return [SourcePlan("", list(cfg.input), cfg, "")]
    return [SourcePlan(name, list(src.input), source_config(cfg, name), source_digest(cfg, name), src.layout)
            for name, src in cfg.sources.items()]


def _run_filter(cfg: FilterConfig, engine: Any, as_given: FilterConfig) -> dict:
    out = Path(cfg.output)
    plans = source_plans(cfg)
    if not any(p.inputs for p in plans):
        raise ValueError("input: give at least one Parquet/JSONL file or directory (--input PATH ...)")
    listed = [list_input_shards(p.inputs, p.layout) for p in plans]
    # Schema checks (a wrong schema anywhere stops the run before any work), identities and cuts: in tasks.
    files = plan_files([s for shards in listed for s in shards], cfg.unit_bytes, _task_map(cfg, engine, "plan"),
                       check=True)
    identities = {f.shard.path: f.identity for f in files}
    keys = [identity_key(f.identity) for f in files]
    if len(set(keys)) != len(keys):
        twice = sorted({f.shard.path for f, k in zip(files, keys, strict=True) if keys.count(k) > 1})
        raise ValueError(f"input: the same file is listed more than once ({', '.join(twice)}); list each once"
                         + (" (a file belongs to one source)" if cfg.sources else ""))
    # Units numbered across sources in priority order: part-NNNNN follows that order.
    units: list[Unit] = []
    unit_plans: list[SourcePlan] = []
    first = 0
    for p, shards in zip(plans, listed, strict=True):
        for u in number_units(files[first:first + len(shards)], cfg.unit_bytes, len(units), p.tag):
            units.append(u)
            unit_plans.append(p)
        first += len(shards)
    sources = [[p.name for p in unit_plans]] if cfg.sources else []  # a renamed source renames its counts
    inputs = inputs_key([*identities.values(), [u.name for u in units], *sources])
    claim_output(cfg, out, as_given)
    stats = _finished(out, cfg, inputs)
    if stats is not None:
        return stats
    work = out / "work"
    for sub in ("pass1", "dedup", "final"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("kept", "rejected"):
        (out / sub).mkdir(exist_ok=True)
    _prune(work, out, units)
    stats = _run_passes(cfg, units, unit_plans, identities, keys, engine)
    stats["inputs_key"] = inputs
    if cfg.report:
        stats["report"] = _draw_report(out, stats, cfg)
    _write_stats(out, stats)
    return stats


def _run_passes(cfg: FilterConfig, units: list[Unit], unit_plans: list[SourcePlan], identities: dict[str, dict],
                keys: list[str], engine: Any) -> dict:
    out, work = Path(cfg.output), str(Path(cfg.output) / "work")
    file_index = {key: i for i, key in enumerate(keys)}
    tasks = [(i, u, identities[u.shard.path]) for i, u in enumerate(units)]
    # The list files, read here and shipped: tasks never open a path that names a file on the driver's machine.
    lists = read_list_files(f for p in {p.name: p for p in unit_plans}.values() for f in list_file_paths(p.cfg))
    # Each unit runs under its source's config.
    first = engine.map(filter_shard, [(*t, p.cfg, work, lists) for t, p in zip(tasks, unit_plans, strict=True)],
                       "filter", tick=True)
    plan = [PassUnit(u.name, file_index[u.input_key], u.input_key, p.name, f["records"])
            for u, p, f in zip(units, unit_plans, first, strict=True)]
    dedup = global_dedup(cfg, work, plan, engine)
    kinds = file_kinds(units, first)  # a JSONL file cut into units writes one set of columns
    final = engine.map(finalize_shard, [(*t, p.cfg, work, str(out), kinds[t[1].input_key])
                                        for t, p in zip(tasks, unit_plans, strict=True)], "write")
    stats = build_stats(cfg, first, dedup, final)
    stats["input_files"] = len(keys)
    if cfg.sources:
        stats["sources"] = _by_source(unit_plans, first, final)
    return stats


def _by_source(unit_plans: list[SourcePlan], first: list[dict], final: list[dict]) -> dict[str, dict]:
    """Per source: its output parts (unit numbers) and document counts."""
    out: dict[str, dict] = {}
    for i, (p, a, b) in enumerate(zip(unit_plans, first, final, strict=True)):
        row = out.setdefault(p.name, {"parts": [], "seen": 0, "kept": 0, "rejected": 0, "skipped": 0,
                                      "rejected_by_reason": Counter()})
        row["parts"].append(i)
        row["seen"] += a["seen"]
        row["skipped"] += sum(a["skipped"].values())
        row["kept"] += b["kept"]
        row["rejected"] += sum(b["rejected"].values())
        row["rejected_by_reason"].update(b["rejected"])
    for row in out.values():
        row["rejected_by_reason"] = dict(row["rejected_by_reason"].most_common())
    return out
