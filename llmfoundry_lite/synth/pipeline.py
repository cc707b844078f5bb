"""``run_synthesis``: Stack-format documents → documented functions → filtered, verified pairs → files.

Counts hold by construction: every record read is a document, parsed or skipped for a named
reason (``documents == documents_parsed + sum(documents_skipped_by_reason)``), and every
documented function found is kept or dropped for one named reason (``seen == kept +
sum(dropped_by_reason)``); every kept pair is in exactly one of ``train.jsonl`` / ``heldout.jsonl``.
Stages: extract + per-function checks + test mining, decontamination, near-dedup, verification
(``verify_stage.py``), split, write, report. The sandbox is set up first, so a machine without
bubblewrap fails before any work. All pairs are held in memory until the corpus-wide steps:
about 2 KB per kept pair.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from llmfoundry_lite.eval.sandbox import Sandbox
from llmfoundry_lite.synth.collect import collect_pairs
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.corpus_checks import contaminated, near_duplicates
from llmfoundry_lite.synth.pairs import Pair
from llmfoundry_lite.synth.split import heldout_groups
from llmfoundry_lite.synth.verify_stage import verify_pairs


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.replace(tmp, path)


def write_pairs(out: Path, pairs: list[Pair], heldout: set[str]) -> None:
    """``instruct.jsonl`` (every pair) and its ``train`` / ``heldout`` partition, in input order."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [p.row() for p in pairs]
    _write_jsonl(out / "instruct.jsonl", rows)
    _write_jsonl(out / "train.jsonl", [r for p, r in zip(pairs, rows, strict=True) if p.group not in heldout])
    _write_jsonl(out / "heldout.jsonl", [r for p, r in zip(pairs, rows, strict=True) if p.group in heldout])


class _Stopwatch:
    """Seconds per stage, for ``stats.json``: where the time of a run went."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._last, 3)
        self._last = now


def run_synthesis(cfg: SynthConfig) -> dict:
    """Read ``cfg.input``, write ``cfg.output``'s files and report, and return the stats written to ``stats.json``.

    Raises ``SandboxUnavailable`` (its message says how to fix it) before reading anything when
    the sandbox cannot be set up: verification is never skipped silently."""
    with Sandbox(cfg.sandbox, workers=cfg.workers) as sandbox:
        sandbox.close()  # its probe passed; the pre-started spares would otherwise idle through extraction
        watch = _Stopwatch()
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
    out = Path(cfg.output)
    write_pairs(out, pairs, heldout)
    watch.lap("write")
    stats = {
        **counts, "kept": sum(p.origin != "self-aligned" for p in pairs), "dropped_by_reason": dict(dropped),
        "decontaminated_by_benchmark": dict(sorted(by_benchmark.items())),
        "origins": dict(sorted(Counter(p.origin for p in pairs).items())), "verify": verify,
        **({"self_align": self_align} if self_align is not None else {}),
        "train": len(pairs) - n_heldout, "heldout": n_heldout,
        "groups": {"train": len({p.group for p in pairs}) - len(heldout), "heldout": len(heldout)},
        "seconds": watch.seconds, "config": asdict(cfg),
    }
    if stats["kept"] + sum(dropped.values()) != stats["seen"]:
        raise RuntimeError(f"pair accounting broken: kept {stats['kept']} + dropped {sum(dropped.values())} "
                           f"!= seen {stats['seen']}")
    if cfg.report:
        from llmfoundry_lite.synth.report import summarize_rows, write_report

        stats["report"] = write_report(out, stats, summarize_rows([p.row() for p in pairs], cfg), cfg)
        watch.lap("report")
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats
