"""detect-secrets used the way BigCode's PII pipeline uses it: a temporary file per document.

This is the peer that ``benchmarks/quality/eval_pii.py`` and ``pii_bench.py`` compare against, not part
of the scrub. BigCode wrote every document to a temporary file and ran ``scan_file`` with a plugin
list (credential formats plus the Base64/Hex high-entropy plugins at their default limits, without
KeywordDetector, BasicAuthDetector and PrivateKeyDetector); detect-secrets' own filters (its
heuristic filters for UUIDs, templates, sequential strings, ...) stay on as they ship.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from llmfoundry_lite.filtering.pii.config import KNOWN_FORMAT_PLUGINS
from llmfoundry_lite.filtering.pii.spans import Finding

BASELINE_PLUGINS = (
    *KNOWN_FORMAT_PLUGINS,
    "Base64HighEntropyString",
    "HexHighEntropyString",
)
"""The plugin set of the baseline: our credential plugins plus detect-secrets' entropy plugins."""


@contextmanager
def baseline_settings() -> Iterator[None]:
    """detect-secrets configured with ``BASELINE_PLUGINS`` (entropy limits at their defaults)."""
    from detect_secrets.settings import transient_settings

    plugins = [{"name": name} for name in BASELINE_PLUGINS]
    for entry in plugins:
        if entry["name"] == "Base64HighEntropyString":
            entry["limit"] = 4.5
        elif entry["name"] == "HexHighEntropyString":
            entry["limit"] = 3.0
    with transient_settings({"plugins_used": plugins}):
        yield


def scan_with_tempfile(text: str, suffix: str = ".txt") -> list[Finding]:
    """Key findings of detect-secrets on ``text`` written to a temporary file (call inside
    ``baseline_settings()``). Spans are every occurrence of each reported secret value."""
    from detect_secrets.core.scan import scan_file

    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        values = {s.secret_value: s.type for s in scan_file(path) if s.secret_value}
    finally:
        os.unlink(path)
    found: list[Finding] = []
    for value, rule in values.items():
        pos = text.find(value)
        while pos >= 0:
            found.append(Finding(pos, pos + len(value), "key", rule))
            pos = text.find(value, pos + len(value))
    return found
