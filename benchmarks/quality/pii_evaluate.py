"""Score the PII detectors against the labeled evaluation set (precision and recall per type).

Labeled files mark each planted item as ``⟦type:value⟧`` (type ``email``, ``ip`` or ``key``);
``parse_labeled`` strips the markers and returns the clean text with the gold spans. A detection
is a true positive when it overlaps an unmatched gold span of the same type; each gold span is
matched at most once, so a secret split into two detections counts once and the rest are false
positives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from llmfoundry_lite.filtering.pii.config import PII_TYPES, PIIConfig
from llmfoundry_lite.filtering.pii.scrub import find_pii
from llmfoundry_lite.filtering.pii.spans import Finding, resolve_overlaps

EVALSET_DIR = Path(__file__).parent / "pii_evalset"
"""The labeled files beside this module: ``dev/``, ``heldout/`` and ``heldout2/`` ``*.pii``."""

_MARKER = re.compile(r"⟦(email|ip|key):(.*?)⟧", re.DOTALL)
_LABEL_TYPES = {"email": "email", "ip": "ip_address", "key": "key"}


@dataclass(frozen=True)
class GoldSpan:
    """A labeled item: ``text[start:end]`` is PII of type ``kind``."""

    start: int
    end: int
    kind: str


@dataclass
class TypeScore:
    """Counts for one PII type, with the misses and false alarms kept for the report."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    false_positives: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def parse_labeled(marked: str) -> tuple[str, list[GoldSpan]]:
    """Strip ``⟦type:value⟧`` markers; return the clean text and the gold spans in it."""
    parts: list[str] = []
    gold: list[GoldSpan] = []
    pos = out_len = 0
    for m in _MARKER.finditer(marked):
        before = marked[pos : m.start()]
        parts.append(before)
        out_len += len(before)
        value = m.group(2)
        gold.append(GoldSpan(out_len, out_len + len(value), _LABEL_TYPES[m.group(1)]))
        parts.append(value)
        out_len += len(value)
        pos = m.end()
    parts.append(marked[pos:])
    text = "".join(parts)
    if "⟦" in text or "⟧" in text:
        raise ValueError("unbalanced or malformed ⟦type:value⟧ marker")
    return text, gold


def score_document(
    text: str, gold: list[GoldSpan], found: list[Finding], scores: dict[str, TypeScore], name: str = ""
) -> None:
    """Add one document's matches, false positives and misses to ``scores`` (per type)."""
    matched: set[GoldSpan] = set()
    for f in found:
        hit = next(
            (g for g in gold if g.kind == f.kind and g not in matched and f.start < g.end and g.start < f.end), None
        )
        if hit is None:
            scores[f.kind].fp += 1
            scores[f.kind].false_positives.append(f"{name}: {text[f.start : f.end]!r} ({f.rule})")
        else:
            matched.add(hit)
            scores[f.kind].tp += 1
    for g in gold:
        if g not in matched:
            scores[g.kind].fn += 1
            scores[g.kind].misses.append(f"{name}: {text[g.start : g.end]!r}")


def evaluate(
    files: Iterable[Path],
    cfg: PIIConfig,
    detector: Callable[[str], list[Finding]] | None = None,
    kinds: tuple[str, ...] = PII_TYPES,
) -> dict[str, TypeScore]:
    """Score ``detector`` (default: ``find_pii`` under ``cfg``) on every labeled file, for the types
    in ``kinds`` (gold spans of other types are ignored); one ``TypeScore`` per type."""
    detect = detector or (lambda text: find_pii(text, cfg))
    scores = {kind: TypeScore() for kind in kinds}
    for path in files:
        text, gold = parse_labeled(path.read_text(encoding="utf-8"))
        found = [f for f in resolve_overlaps(detect(text)) if f.kind in kinds]
        score_document(text, [g for g in gold if g.kind in kinds], found, scores, path.name)
    return scores


def evalset_files(directory: Path = EVALSET_DIR) -> list[Path]:
    """The labeled ``*.pii`` files under ``directory`` (recursively), in path order."""
    files = sorted(directory.rglob("*.pii"))
    if not files:
        raise FileNotFoundError(f"no labeled *.pii files in {directory}")
    return files


def format_table(scores: dict[str, TypeScore]) -> str:
    """Precision/recall table, one row per type."""
    lines = [f"{'type':<12}{'gold':>6}{'found':>7}{'tp':>5}{'fp':>5}{'fn':>5}{'precision':>11}{'recall':>8}"]
    for kind, s in scores.items():
        lines.append(
            f"{kind:<12}{s.tp + s.fn:>6}{s.tp + s.fp:>7}{s.tp:>5}{s.fp:>5}{s.fn:>5}{s.precision:>11.3f}{s.recall:>8.3f}"
        )
    return "\n".join(lines)
