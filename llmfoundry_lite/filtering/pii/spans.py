"""A detected PII span and the overlap resolution shared by every detector."""

from __future__ import annotations

from typing import NamedTuple


class Finding(NamedTuple):
    """One detected span ``text[start:end]`` of type ``kind`` found by ``rule``."""

    start: int
    end: int
    kind: str
    """"email", "ip_address" or "key"."""
    rule: str
    """Which detector rule fired (a detect-secrets plugin name, "high_entropy", "ipv4", ...)."""


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep non-overlapping findings, left to right; among spans starting together the longest wins.

    Detectors run independently, so a password inside a URL may also look like the local part of
    an email; the earlier, longer span is the one redacted, and a named credential format is
    reported in preference to the generic high-entropy rule.
    """
    ordered = sorted(findings, key=lambda f: (f.start, -(f.end - f.start), f.rule == "high_entropy", f.kind, f.rule))
    kept: list[Finding] = []
    for f in ordered:
        if kept and f.start < kept[-1].end:
            continue
        kept.append(f)
    return kept


def line_bounds(text: str, pos: int) -> tuple[int, int]:
    """Start and end offsets of the line holding ``pos`` (end excludes the newline)."""
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, len(text) if end < 0 else end
