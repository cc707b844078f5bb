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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from llmfoundry_lite.corpus.readers import iter_documents, list_input_shards
from llmfoundry_lite.eval.sandbox import Sandbox
from llmfoundry_lite.synth.checks import REASONS, drop_reason, source_drop_reason
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.corpus_checks import contaminated, near_duplicates
from llmfoundry_lite.synth.extract import Function, extract_functions, format_prompt, parse_module
from llmfoundry_lite.synth.extract_java import extract_java
from llmfoundry_lite.synth.extract_js import extract_javascript, extract_typescript
from llmfoundry_lite.synth.extract_ts import SourceFunction, format_source_prompt
from llmfoundry_lite.synth.mining import ModuleAsserts, mine_tests
from llmfoundry_lite.synth.split import group_of, heldout_groups
from llmfoundry_lite.synth.verify import untestable
from llmfoundry_lite.synth.verify_stage import verify_pairs

LANGUAGE = "Python"
CORPUS_REASONS = {
    "decontaminated": "the code holds a benchmark text (decontam options)",
    "near_duplicate": "estimated Jaccard similarity >= near_dup_threshold with an earlier kept pair",
}
DOCUMENT_SKIPS = {
    "unsupported_language": "the document's language is none of Python, JavaScript, TypeScript, Java",
    "language_not_selected": "a supported language left out of the ``languages`` option",
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
    """Code block + response: what decontamination and near-dedup compare, and what the tests run against."""
    source_id: str
    """``<document id>#<qualname>:<def line>``."""
    group: str
    """Split group (``repo:<name>`` or ``doc:<id>``)."""
    tests: tuple[str, ...] = ()
    """The mined tests' programs (``mining.py``), doctest first; kept in the row even when not run."""
    test_kinds: tuple[str, ...] = ()
    """``doctest`` / ``assert`` per test."""
    discarded_tests: tuple[str, ...] = ()
    """Reasons (``mining.DISCARD_REASONS``) of doctests/asserts found but not usable as tests."""
    untestable: str | None = "no_tests"
    """Why the tests cannot run (``verify.UNTESTED_REASONS``), None when they can."""
    origin: str = "untested"
    """``verified`` once its tests passed in the sandbox, else ``untested``."""
    language: str = LANGUAGE
    """The document's language (``Python``, ``JavaScript``, ``TypeScript``, ``Java``)."""

    def row(self) -> dict:
        return {"prompt": self.prompt, "response": self.response, "tests": list(self.tests),
                "source_id": self.source_id, "language": self.language, "origin": self.origin}


def _pair(doc: dict, fn: Function, module: ModuleAsserts, cfg: SynthConfig) -> Pair:
    tests, discarded = mine_tests(fn, module)
    return Pair(prompt=format_prompt(fn), response=fn.body, program=fn.program,
                source_id=f"{doc['id']}#{fn.qualname}:{fn.lineno}", group=group_of(doc, cfg.split_by),
                tests=tuple(t.source for t in tests), test_kinds=tuple(t.kind for t in tests),
                discarded_tests=discarded, untestable=untestable(fn, tests, frozenset(cfg.unsafe_modules)))


def _python_pairs(doc: dict, cfg: SynthConfig, dropped: Counter) -> tuple[list[Pair], int] | str:
    try:
        tree = parse_module(doc["content"])
    except (SyntaxError, ValueError):  # IndentationError is a SyntaxError; ValueError: null bytes
        return "syntax_error"
    except (RecursionError, MemoryError):
        return "too_deep"
    functions = extract_functions(doc["content"], tree)
    module = ModuleAsserts.of(tree)
    pairs = []
    for fn in functions:
        reason = drop_reason(fn, cfg)
        if reason is not None:
            dropped[reason] += 1
            continue
        pairs.append(_pair(doc, fn, module, cfg))
    return pairs, len(functions)


SOURCE_EXTRACTORS: dict[str, Callable[[str, str], list[SourceFunction]]] = {
    "JavaScript": extract_javascript, "TypeScript": extract_typescript, "Java": extract_java,
}
"""Extractor per tree-sitter language (``extract_ts.py``); called with the content and the path (``.tsx``)."""


def _source_pairs(doc: dict, cfg: SynthConfig, dropped: Counter) -> tuple[list[Pair], int]:
    """JavaScript / TypeScript / Java: no tests are mined, so every pair is ``language_not_runnable``."""
    functions = SOURCE_EXTRACTORS[doc["lang"]](doc["content"], doc.get("path") or "")
    pairs = []
    for fn in functions:
        reason = source_drop_reason(fn, cfg)
        if reason is not None:
            dropped[reason] += 1
            continue
        pairs.append(Pair(prompt=format_source_prompt(fn), response=fn.body, program=fn.program,
                          source_id=f"{doc['id']}#{fn.qualname}:{fn.lineno}", group=group_of(doc, cfg.split_by),
                          untestable="language_not_runnable", language=doc["lang"]))
    return pairs, len(functions)


DOCUMENT_PAIRS: dict[str, Callable[[dict, SynthConfig, Counter], tuple[list[Pair], int] | str]] = {
    "Python": _python_pairs, "JavaScript": _source_pairs, "TypeScript": _source_pairs, "Java": _source_pairs,
}
"""How each supported language's documents become pairs; every other language is ``unsupported_language``."""


def document_pairs(doc: dict, cfg: SynthConfig, dropped: Counter) -> tuple[list[Pair], int] | str:
    """Kept pairs of one document (tests mined) and how many functions it had; or why the document was skipped.

    Drop reasons of its functions are added to ``dropped``."""
    handler = DOCUMENT_PAIRS.get(doc["lang"])
    if handler is None:
        return "unsupported_language"
    return handler(doc, cfg, dropped) if doc["lang"] in cfg.languages else "language_not_selected"


def collect_pairs(cfg: SynthConfig) -> tuple[list[Pair], dict]:
    """Pairs surviving the per-function checks, in input order, and the document/function counts so far."""
    documents, parsed, seen = 0, 0, 0
    skipped: Counter = Counter()
    languages: Counter = Counter()
    dropped: Counter = Counter({r: 0 for r in REASONS})
    pairs: list[Pair] = []
    for shard in list_input_shards(cfg.input):
        reader_skips: Counter = Counter()
        for doc in iter_documents(shard, reader_skips):
            documents += 1
            languages[doc["lang"]] += 1
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
              "documents_skipped_by_reason": dict(sorted(skipped.items())),
              "documents_by_language": dict(sorted(languages.items(), key=lambda kv: (-kv[1], kv[0]))),
              "seen": seen, "dropped": dropped}
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
        from llmfoundry_lite.synth.report import write_report

        stats["report"] = write_report(out, stats, [p.row() for p in pairs], cfg)
        watch.lap("report")
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats
