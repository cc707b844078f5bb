"""Run the detectors, resolve overlaps and replace each span with its placeholder."""

from __future__ import annotations

from collections.abc import Callable

from llmfoundry_lite.filtering.pii.config import PII_TYPES, PIIConfig
from llmfoundry_lite.filtering.pii.emails import find_emails
from llmfoundry_lite.filtering.pii.ips import find_ips
from llmfoundry_lite.filtering.pii.keys import find_keys
from llmfoundry_lite.filtering.pii.spans import Finding, resolve_overlaps

DETECTORS: dict[str, Callable[[str, PIIConfig], list[Finding]]] = {
    "key": find_keys,
    "email": find_emails,
    "ip_address": find_ips,
}
"""One detector per finding type; ``PIIConfig`` switches each on or off."""

_SWITCH = {"email": "emails", "ip_address": "ip_addresses", "key": "keys"}
_PLACEHOLDER = {"email": "email_placeholder", "ip_address": "ip_placeholder", "key": "key_placeholder"}


def find_pii(text: str, cfg: PIIConfig) -> list[Finding]:
    """Non-overlapping PII spans of ``text``, left to right."""
    if not cfg.enabled:
        return []
    found: list[Finding] = []
    for kind, detect in DETECTORS.items():
        if getattr(cfg, _SWITCH[kind]):
            found.extend(detect(text, cfg))
    return resolve_overlaps(found)


def redact(text: str, findings: list[Finding], cfg: PIIConfig) -> str:
    """``text`` with every finding replaced by its type's placeholder (findings must not overlap)."""
    parts: list[str] = []
    pos = 0
    for f in findings:
        parts.append(text[pos : f.start])
        parts.append(getattr(cfg, _PLACEHOLDER[f.kind]))
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


def scrub_pii(text: str, cfg: PIIConfig) -> tuple[str, dict[str, int]]:
    """Redact emails, public IPs and secrets in ``text``; return it with findings counted by type.

    The counts always hold every type in ``PII_TYPES`` ("email", "ip_address", "key"), zeros included.
    """
    findings = find_pii(text, cfg)
    counts = dict.fromkeys(PII_TYPES, 0)
    for f in findings:
        counts[f.kind] += 1
    return (redact(text, findings, cfg) if findings else text), counts
