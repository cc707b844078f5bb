"""``run_synthesis``: Stack-format documents → documented functions → filtered, verified pairs → files.

Counts hold by construction: every record read is a document, parsed or skipped for a named
reason (``documents == documents_parsed + sum(documents_skipped_by_reason)``), and every
documented function found is kept or dropped for one named reason (``seen == kept +
sum(dropped_by_reason)``); every kept pair is in exactly one of ``train.jsonl`` / ``heldout.jsonl``.
Stages: extract + per-function checks + test mining, decontamination, near-dedup, verification
(``verify_stage.py``), split, write, report. The sandbox is set up first, so a machine without
bubblewrap fails before any work. ``engine=local`` holds all pairs in memory until the corpus-wide
steps (about 2 KB per kept pair); ``engine=spark`` runs the same stages as Spark jobs
(``spark_synthesis.py``) with the same output. Both hand back an ``Outcome``, from which this module
writes ``stats.json`` and the report.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

from llmfoundry_lite.corpus.uris import local_path
from llmfoundry_lite.sandbox import Sandbox
from llmfoundry_lite.synth.collect import collect_pairs
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.corpus_checks import contaminated, near_duplicates
from llmfoundry_lite.synth.outcome import Outcome, Stopwatch
from llmfoundry_lite.synth.pairs import Pair
from llmfoundry_lite.synth.report import summarize_rows
from llmfoundry_lite.synth.split import heldout_groups
from llmfoundry_lite.synth.verify_cache import prune, start_run
from llmfoundry_lite.synth.verify_stage import verify_cache_dir, verify_pairs


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.replace(tmp, path)


def write_pairs(out: Path, pairs: list[Pair], rows: list[dict], heldout: set[str]) -> None:
    """``instruct.jsonl`` (every pair; ``rows`` are their ``row()``) and its ``train`` / ``heldout`` partition,
    in input order."""
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / "instruct.jsonl", rows)
    _write_jsonl(out / "train.jsonl", [r for p, r in zip(pairs, rows, strict=True) if p.group not in heldout])
    _write_jsonl(out / "heldout.jsonl", [r for p, r in zip(pairs, rows, strict=True) if p.group in heldout])


def _local(cfg: SynthConfig, sandbox: Sandbox, watch: Stopwatch) -> Outcome:
    """Every stage in this process (extraction on a process pool), all pairs in memory."""
    pairs, counts = collect_pairs(cfg)
    dropped = counts.pop("dropped")
    watch.lap("extract")
    flags, by_benchmark = contaminated([p.program for p in pairs], cfg.decontam)
    dropped["decontaminated"] = sum(flags)
    pairs = [p for p, bad in zip(pairs, flags, strict=True) if not bad]
    watch.lap("decontam")
    duplicate_of = near_duplicates([p.program for p in pairs], cfg.near_dup_threshold)
    dropped["near_duplicate"] = sum(d is not None for d in duplicate_of)
    pairs = [p for p, d in zip(pairs, duplicate_of, strict=True) if d is None]
    watch.lap("near_dup")
    candidates = pairs
    pairs, verify_dropped, verify = verify_pairs(candidates, cfg, sandbox)
    dropped.update(verify_dropped)
    watch.lap("verify")
    self_align = None
    if cfg.model is not None:  # self-align mode: extra ``self-aligned`` rows; the pairs' own counts stay
        from llmfoundry_lite.synth.self_align import self_align_pairs

        pairs, self_align = self_align_pairs(candidates, pairs, cfg, sandbox)
        watch.lap("self_align")
    heldout = heldout_groups([p.group for p in pairs], cfg.heldout_fraction, cfg.seed)
    n_heldout = sum(p.group in heldout for p in pairs)
    rows = [p.row() for p in pairs]
    write_pairs(Path(cfg.output), pairs, rows, heldout)
    watch.lap("write")
    return Outcome(counts, dropped, by_benchmark, verify, kept=sum(p.origin != "self-aligned" for p in pairs),
                   origins=Counter(p.origin for p in pairs), train=len(pairs) - n_heldout, heldout=n_heldout,
                   groups={"train": len({p.group for p in pairs}) - len(heldout), "heldout": len(heldout)},
                   summary=summarize_rows(rows, cfg), self_align=self_align)


def run_synthesis(cfg: SynthConfig) -> dict:
    """Read ``cfg.input``, write ``cfg.output``'s files and report, and return the stats written to ``stats.json``.

    Raises ``SandboxUnavailable`` (its message says how to fix it) before reading anything when
    the sandbox cannot be set up: verification is never skipped silently."""
    output = local_path(cfg.output)  # absolute, here on the driver: Spark executors run in other directories
    if output is None:
        raise ValueError(f"output must be a local or shared path (or file://, dbfs:/), got {cfg.output}")
    cfg = replace(cfg, output=output)
    workers = cfg.workers if cfg.engine == "local" else 1  # on Spark the executors open their own
    with Sandbox(cfg.sandbox, workers=workers) as sandbox:
        sandbox.close()  # its probe passed; the pre-started spares would otherwise idle through extraction
        start_run(verify_cache_dir(cfg))  # chunks this run does not use are pruned at its end
        watch = Stopwatch()
        if cfg.engine == "spark":
            from llmfoundry_lite.synth.spark_synthesis import spark_synthesis

            run = spark_synthesis(cfg, sandbox, watch)
        else:
            run = _local(cfg, sandbox, watch)
    out = Path(cfg.output)
    prune(verify_cache_dir(cfg))  # results of programs this run no longer has
    stats = {
        **run.counts, "kept": run.kept, "dropped_by_reason": dict(run.dropped),
        "decontaminated_by_benchmark": dict(sorted(run.by_benchmark.items())),
        "origins": dict(sorted(run.origins.items())), "verify": run.verify,
        **({"self_align": run.self_align} if run.self_align is not None else {}),
        "train": run.train, "heldout": run.heldout, "groups": run.groups,
        "seconds": watch.seconds, "config": asdict(cfg),
    }
    if stats["kept"] + sum(run.dropped.values()) != stats["seen"]:
        raise RuntimeError(f"pair accounting broken: kept {stats['kept']} + dropped {sum(run.dropped.values())} "
                           f"!= seen {stats['seen']}")
    if cfg.report:
        from llmfoundry_lite.synth.report import write_report

        stats["report"] = write_report(out, stats, run.summary, cfg)
        watch.lap("report")
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats
