"""Extraction over units of work: a pool of processes, each unit's result kept so a rerun reuses it.

Units are the filter stage's (``corpus/units.py``: runs of whole Parquet row groups of at least
``unit_bytes``; a JSONL file or a source tree is one unit), listed in input order. ``workers``
processes extract them and the results are merged in unit order, so the output never depends on
the worker count. Each finished unit's pairs and counts are written at once, atomically, to
``<output>/work/extract/<unit name>-<settings key>.pkl``; the unit name hashes the input file's
identity (path, size, mtime) and row range, the key the settings that shape extraction. A rerun
— after a crash or a SIGKILL, or with inputs added, removed or replaced — reuses exactly the
units whose file and settings are unchanged and extracts the rest; files of units no longer
planned are deleted. A file that changes while it is read stops the run naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path

from llmfoundry_lite.corpus.identity import check_unchanged, file_identity
from llmfoundry_lite.corpus.readers import list_input_shards
from llmfoundry_lite.corpus.units import Unit, iter_unit, plan_units
from llmfoundry_lite.spark_session import attempt_tmp
from llmfoundry_lite.synth.checks import REASONS
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.pairs import Pair, document_pairs

EXTRACT_FORMAT = 1
"""Bumped whenever extraction's code changes what a unit yields: older unit files are then ignored."""
EXTRACT_KEYS = ("min_body_lines", "max_body_lines", "max_prompt_chars", "max_response_chars", "unsafe_modules",
                "unsafe_calls", "split_by", "languages")  # fmt: skip
"""The settings a unit's pairs depend on (the rest — dedup, verification, split, sampling — act later)."""


@dataclass
class UnitResult:
    """What one unit gave: its pairs (input order) and its share of the document and function counts."""

    pairs: list[Pair] = field(default_factory=list)
    documents: int = 0
    parsed: int = 0
    seen: int = 0
    skipped: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)


def settings_key(cfg: SynthConfig) -> str:
    """Hash of the extraction settings and of the tools whose versions change results."""
    settings = asdict(cfg)
    made_of = {k: settings[k] for k in EXTRACT_KEYS}
    made_of["tools"] = [EXTRACT_FORMAT, sys.version_info[:2], version("tree-sitter-language-pack")]
    return hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:16]


def extract_unit(unit: Unit, cfg: SynthConfig) -> UnitResult:
    """Pairs and counts of one unit's documents."""
    out = UnitResult()
    reader_skips: Counter = Counter()
    for doc in iter_unit(unit, reader_skips):
        out.documents += 1
        out.languages[doc["lang"]] += 1
        result = document_pairs(doc, cfg, out.dropped)
        if isinstance(result, str):
            out.skipped[result] += 1
            continue
        out.parsed += 1
        out.pairs += result[0]
        out.seen += result[1]
    out.skipped.update(reader_skips)
    out.documents += sum(reader_skips.values())
    return out


def _run_unit(unit: Unit, identity: dict, cfg: SynthConfig, path: Path) -> UnitResult:
    """Worker: extract, check the file did not change meanwhile, store the result atomically."""
    result = extract_unit(unit, cfg)
    check_unchanged(unit.shard, identity)
    tmp = attempt_tmp(path)  # a speculative copy of this unit may run at once, on another host (same pid too)
    tmp.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(tmp, path)
    return result


def _load(path: Path) -> UnitResult | None:
    try:
        return pickle.loads(path.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, TypeError):
        return None  # missing, or cut short by a kill mid-write before the rename: extract again


@dataclass
class ExtractPlan:
    """The units of a run, their input files' identities and where each unit's result is kept."""

    units: list[Unit]
    identities: dict[str, dict]
    paths: list[Path]

    def task(self, i: int, cfg: SynthConfig) -> tuple:
        return self.units[i], self.identities[self.units[i].shard.path], cfg, self.paths[i]


def plan_extract(cfg: SynthConfig) -> ExtractPlan:
    """Plan the units, and delete the kept results of units no longer planned (or made with other settings)."""
    identities = {s.path: file_identity(s) for s in list_input_shards(cfg.input)}
    units = plan_units(cfg.input, cfg.unit_bytes, identities)
    work = Path(cfg.output) / "work" / "extract"
    work.mkdir(parents=True, exist_ok=True)
    key = settings_key(cfg)
    paths = [work / f"{u.name}-{key}.pkl" for u in units]
    for stale in set(work.iterdir()) - set(paths):
        stale.unlink()
    return ExtractPlan(units, identities, paths)


def load_unit(path: Path) -> list[Pair]:
    """The pairs of a finished unit (executors read them back on Spark)."""
    result = _load(path)
    if result is None:
        raise RuntimeError(f"extraction result {path} vanished or is unreadable: rerun to extract the unit again")
    return result.pairs


def unit_counts(unit: Unit, identity: dict, cfg: SynthConfig, path: Path) -> tuple[bool, UnitResult, int]:
    """Spark task: reuse or extract one unit; only whether it was reused, its counts and its pair count come back."""
    result = _load(path)
    reused = result is not None
    if result is None:
        result = _run_unit(unit, identity, cfg, path)
    n = len(result.pairs)
    result.pairs = []
    return reused, result, n


def merge_counts(results: list[UnitResult], reused: int) -> dict:
    """The document/function counts of a run from its units' results, in unit order."""
    total = UnitResult(dropped=Counter({r: 0 for r in REASONS}))
    for r in results:
        total.documents, total.parsed, total.seen = total.documents + r.documents, total.parsed + r.parsed, total.seen + r.seen
        total.skipped.update(r.skipped)
        total.languages.update(r.languages)
        total.dropped.update(r.dropped)
    return {"documents": total.documents, "documents_parsed": total.parsed,
            "documents_skipped_by_reason": dict(sorted(total.skipped.items())),
            "documents_by_language": dict(sorted(total.languages.items(), key=lambda kv: (-kv[1], kv[0]))),
            "seen": total.seen, "dropped": total.dropped,
            "extract": {"units": len(results), "reused": reused}}  # fmt: skip


def collect_pairs(cfg: SynthConfig) -> tuple[list[Pair], dict]:
    """Pairs surviving the per-function checks, in input order, and the document/function counts so far
    (``extract``: units planned and reused)."""
    plan = plan_extract(cfg)
    results: list[UnitResult | None] = [_load(p) for p in plan.paths]
    todo = [i for i, r in enumerate(results) if r is None]
    workers = min(cfg.workers, len(todo))
    if workers <= 1:
        for i in todo:
            results[i] = _run_unit(*plan.task(i, cfg))
    else:  # forkserver, not fork: the caller may hold threads (a notebook, a server) whose locks a fork copies
        with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
            futures = {i: pool.submit(_run_unit, *plan.task(i, cfg)) for i in todo}
            for i, future in futures.items():
                results[i] = future.result()
    done = [r for r in results if r is not None]
    pairs = [p for r in done for p in r.pairs]
    return pairs, merge_counts(done, len(plan.units) - len(todo))
