"""The per-document part of the filter stage: the same function runs under every engine.

``process_document`` applies, in order, the metadata filters (license allow list, opt-out
list), the size cap and the content filters in ``DOC_FILTERS`` (auto-generated → line
heuristics → parse check → benchmark decontamination; the first that objects names the
reason), then redacts PII in surviving documents and fingerprints them for the global dedup
pass. Auto-generated detection runs before the line heuristics so that a minified bundle is
recorded as ``autogen:minified`` rather than the less telling ``max_line_length``. The
record it returns holds decisions and hashes only; the content is re-read from the input
when ``kept/`` and ``rejected/`` are written (``shards.finalize_shard``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from llmfoundry_lite.filtering.autogen import autogen_rule
from llmfoundry_lite.filtering.dedup import content_hash, minhash_signature
from llmfoundry_lite.filtering.heuristics import LineStats, heuristics_reason, line_stats
from llmfoundry_lite.filtering.list_files import FileContents, read_list_files
from llmfoundry_lite.filtering.parse import parse_error
from llmfoundry_lite.filtering.permissions import Permissions
from llmfoundry_lite.filtering.records import PII_TYPES

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import FilterConfig
    from llmfoundry_lite.filtering.decontam import Decontaminator


class TaskLists(NamedTuple):
    """What a task builds once from a config's lists: the license and opt-out sets and the benchmark index."""

    permissions: Permissions
    benchmarks: Decontaminator | None  # None when decontamination is off

    @classmethod
    def compile(cls, cfg: FilterConfig, contents: FileContents | None = None) -> TaskLists:
        """``contents``: the bytes of the config's list files as the driver shipped them (``list_files``); None
        reads them here (for a process that is the driver)."""
        if contents is None:
            contents = read_list_files(list_file_paths(cfg))
        benchmarks = None
        if cfg.decontam.enabled:
            from llmfoundry_lite.filtering.decontam import decontaminator

            benchmarks = decontaminator(cfg.decontam, contents)
        return cls(Permissions.compile(cfg, contents), benchmarks)


def list_file_paths(cfg: FilterConfig) -> list[str]:
    """The files a task of ``cfg`` decides with: what the driver reads and ships."""
    return [*cfg.opt_out.files, *(cfg.decontam.files if cfg.decontam.enabled else [])]


FilterFn = Callable[[dict, LineStats, "FilterConfig", TaskLists], "tuple[str, str] | None"]


def _autogen(doc: dict, stats: LineStats, cfg: FilterConfig, lists: TaskLists) -> tuple[str, str] | None:
    rule = autogen_rule(doc, stats, cfg.autogen)
    return None if rule is None else (f"autogen:{rule}", rule)


def _heuristics(doc: dict, stats: LineStats, cfg: FilterConfig, lists: TaskLists) -> tuple[str, str] | None:
    reason = heuristics_reason(stats, doc["lang"], cfg.heuristics)
    if reason is None:
        return None
    detail = (f"max_line_length={stats.max_line_length} mean_line_length={stats.mean_line_length:.1f} "
              f"alphanum_fraction={stats.alphanum_fraction:.3f}")
    return reason, detail


def _parse(doc: dict, stats: LineStats, cfg: FilterConfig, lists: TaskLists) -> tuple[str, str] | None:
    verdict = parse_error(doc, cfg.parse)  # reason: parse_error, parse_error:python2 or parse_error:python_newer
    return None if verdict is None else (verdict[0], verdict[1][:500])


def _decontam(doc: dict, stats: LineStats, cfg: FilterConfig, lists: TaskLists) -> tuple[str, str] | None:
    hit = lists.benchmarks.find(doc["content"]) if lists.benchmarks is not None else None
    if hit is None:
        return None
    benchmark = "_".join(hit.benchmark.split())  # the detail's first word names the benchmark
    return "decontaminated", f"{benchmark} {hit.task_id} {hit.field}: shares {hit.ngram[:300]!r}"


def decontam_benchmark(detail: str) -> str:
    """The benchmark named in a ``decontaminated`` detail (its first word, see ``_decontam``)."""
    return detail.split(" ", 1)[0]


# Section name in FilterConfig -> check; tried in this order.
DOC_FILTERS: dict[str, FilterFn] = {"autogen": _autogen, "heuristics": _heuristics, "parse": _parse,
                                    "decontam": _decontam}


def scrub(text: str, cfg: FilterConfig) -> tuple[str, dict[str, int]]:
    """Redact PII with the PII package (``scrub_pii``); counts keyed by ``PII_TYPES``."""
    from llmfoundry_lite.filtering.pii import scrub_pii

    redacted, found = scrub_pii(text, cfg.pii)
    return redacted, {t: int(found.get(t, 0)) for t in PII_TYPES}


def first_rejection(doc: dict, stats: LineStats, cfg: FilterConfig,
                    lists: TaskLists | None = None) -> tuple[str, str] | None:
    """``(reason, detail)`` of the first enabled filter that rejects ``doc``, or None.

    ``lists``: ``cfg``'s lists compiled by the task (``TaskLists.compile``); None compiles them for
    this one document (a caller that checks many passes them)."""
    lists = lists or TaskLists.compile(cfg)
    # License and opt-out verdicts are decided from the row's metadata, before any content filter.
    verdict = lists.permissions.verdict(doc)
    if verdict is not None:
        return verdict
    if doc["size"] > cfg.max_doc_bytes:
        return "too_large", f"{doc['size']} bytes > max_doc_bytes={cfg.max_doc_bytes}"
    for section, check in DOC_FILTERS.items():
        if getattr(cfg, section).enabled:
            verdict = check(doc, stats, cfg, lists)
            if verdict is not None:
                return verdict
    return None


def redacted(doc: dict, cfg: FilterConfig) -> tuple[str, dict[str, int]]:
    """The content a kept document is written with (PII replaced) and the PII counts."""
    if not cfg.pii.enabled:
        return doc["content"], dict.fromkeys(PII_TYPES, 0)
    return scrub(doc["content"], cfg)


def process_document(doc: dict, cfg: FilterConfig, lists: TaskLists) -> tuple[dict, np.ndarray | None]:
    """Filter, redact and fingerprint one normalized document (``lists``: ``TaskLists.compile(cfg, contents)``,
    built once per task).

    Returns the pass-1 record (``row``, ``id``, ``lang``, ``size`` — after redaction when kept —,
    ``reason`` — empty while the document is still a candidate — ``detail``, line statistics,
    PII counts and the normalized-content hash; no content) and its MinHash signature (None
    when rejected, near-dedup is off, or it has no tokens).
    """
    stats = line_stats(doc["content"])
    verdict = first_rejection(doc, stats, cfg, lists)
    record = {"row": doc["row"], "id": doc["id"], "lang": doc["lang"], "size": doc["size"]}
    counts = dict.fromkeys(PII_TYPES, 0)
    signature = None
    if verdict is None:
        text, counts = redacted(doc, cfg)
        record["size"] = len(text.encode("utf-8"))
        record["content_hash"] = content_hash(text) if cfg.dedup.exact else ""
        if cfg.dedup.near:
            signature = minhash_signature(text, cfg.dedup)
    else:
        record["content_hash"] = ""
    record.update(
        reason=verdict[0] if verdict else "",
        detail=verdict[1] if verdict else "",
        max_line_length=stats.max_line_length,
        mean_line_length=stats.mean_line_length,
        alphanum_fraction=stats.alphanum_fraction,
        **{f"pii_{t}": n for t, n in counts.items()},
    )
    return record, signature
