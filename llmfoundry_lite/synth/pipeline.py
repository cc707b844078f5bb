"""``run_synthesis``: Stack-format documents → documented functions → filtered pairs → train/heldout files.

Counts hold by construction: every record read is a document, parsed or skipped for a named
reason (``documents == documents_parsed + sum(documents_skipped_by_reason)``), and every
documented function found is kept or dropped for one named reason (``seen == kept +
sum(dropped_by_reason)``); every kept pair is in exactly one of ``train.jsonl`` / ``heldout.jsonl``.
All pairs are held in memory until the corpus-wide steps: about 2 KB per kept pair.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from llmfoundry_lite.corpus.readers import iter_documents, list_input_shards
from llmfoundry_lite.synth.checks import REASONS, drop_reason
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.corpus_checks import contaminated, near_duplicates
from llmfoundry_lite.synth.extract import extract_functions, format_prompt, parse_module
from llmfoundry_lite.synth.split import group_of, heldout_groups

LANGUAGE = "Python"
ORIGIN = "untested"  # no tests were run on these pairs; a later verification stage may set another origin
CORPUS_REASONS = {
    "decontaminated": "the code holds a benchmark text (decontam options)",
    "near_duplicate": "estimated Jaccard similarity >= near_dup_threshold with an earlier kept pair",
}
DOCUMENT_SKIPS = {
    "not_python": "the document's language is not Python",
    "syntax_error": "ast.parse fails (Python 2, broken or truncated files)",
    "too_deep": "nesting too deep for the parser (RecursionError / MemoryError)",
}
"""Why a document gave no functions; the readers' own skip reasons (``null_content``, ...) are added as they come."""


@dataclass(frozen=True)
class Pair:
    """One kept (prompt, response) pair and where it came from."""

    prompt: str
    response: str
    program: str
    """Code block + response: what decontamination and near-dedup compare."""
    source_id: str
    """``<document id>#<qualname>:<def line>``."""
    group: str
    """Split group (``repo:<name>`` or ``doc:<id>``)."""

    def row(self) -> dict:
        return {"prompt": self.prompt, "response": self.response, "tests": [], "source_id": self.source_id,
                "language": LANGUAGE, "origin": ORIGIN}


def document_pairs(doc: dict, cfg: SynthConfig, dropped: Counter) -> tuple[list[Pair], int] | str:
    """Kept pairs of one document and how many functions it had; or why the document was skipped.

    Drop reasons of its functions are added to ``dropped``."""
    if doc["lang"] != LANGUAGE:
        return "not_python"
    try:
        tree = parse_module(doc["content"])
    except (SyntaxError, ValueError):  # IndentationError is a SyntaxError; ValueError: null bytes
        return "syntax_error"
    except (RecursionError, MemoryError):
        return "too_deep"
    functions = extract_functions(doc["content"], tree)
    pairs = []
    for fn in functions:
        reason = drop_reason(fn, cfg)
        if reason is not None:
            dropped[reason] += 1
            continue
        pairs.append(Pair(prompt=format_prompt(fn), response=fn.body, program=fn.program,
                          source_id=f"{doc['id']}#{fn.qualname}:{fn.lineno}", group=group_of(doc, cfg.split_by)))
    return pairs, len(functions)


def collect_pairs(cfg: SynthConfig) -> tuple[list[Pair], dict]:
    """Pairs surviving the per-function checks, in input order, and the document/function counts so far."""
    documents, parsed, seen = 0, 0, 0
    skipped: Counter = Counter()
    dropped: Counter = Counter({r: 0 for r in REASONS})
    pairs: list[Pair] = []
    for shard in list_input_shards(cfg.input):
        reader_skips: Counter = Counter()
        for doc in iter_documents(shard, reader_skips):
            documents += 1
            result = document_pairs(doc, cfg, dropped)
            if isinstance(result, str):
                skipped[result] += 1
                continue
            parsed += 1
            pairs += result[0]
            seen += result[1]
        skipped.update(reader_skips)
        documents += sum(reader_skips.values())
    counts = {"documents": documents, "documents_parsed": parsed,
              "documents_skipped_by_reason": dict(sorted(skipped.items())), "seen": seen, "dropped": dropped}
    return pairs, counts


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
    """Read ``cfg.input``, write ``cfg.output``'s four files, and return the stats written to ``stats.json``."""
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
    heldout = heldout_groups([p.group for p in pairs], cfg.heldout_fraction, cfg.seed)
    n_heldout = sum(p.group in heldout for p in pairs)
    write_pairs(Path(cfg.output), pairs, heldout)
    watch.lap("write")
    stats = {
        **counts, "kept": len(pairs), "dropped_by_reason": dict(dropped),
        "decontaminated_by_benchmark": dict(sorted(by_benchmark.items())),
        "train": len(pairs) - n_heldout, "heldout": n_heldout,
        "groups": {"train": len({p.group for p in pairs}) - len(heldout), "heldout": len(heldout)},
        "seconds": watch.seconds, "config": asdict(cfg),
    }
    (Path(cfg.output) / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats
