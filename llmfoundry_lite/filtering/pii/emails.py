"""Email addresses, guarded against the ``@`` forms that fill source code.

Code is full of ``x@y.z`` that are not addresses: ``icon@2x.png``, ``lodash@4.17.21``, Python's
matrix product ``inputs@self.weight``, ``git@github.com:org/repo.git``, ``postgres://user:pw@host``.
The search anchors on ``@`` (so text without one costs a single ``in`` test), requires a top-level
domain that really is one (IANA's list, less the few that read as file extensions), and skips URL
user-info, scp-style remotes, matrix products and placeholder domains.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from llmfoundry_lite.filtering.pii.config import PIIConfig
from llmfoundry_lite.filtering.pii.spans import Finding

_DOMAIN_AFTER_AT = re.compile(
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24}))(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
)
_LOCAL_BEFORE_AT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}\Z")


@lru_cache(maxsize=1)
def iana_tlds() -> frozenset[str]:
    """IANA's top-level domains (lower case), from the list shipped in the pinned ``validators`` wheel."""
    text = resources.files("validators").joinpath("_tld.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


FILE_EXTENSION_TLDS = frozenset("py sh so md pm zip mov".split())
"""Real TLDs that after ``@`` are far more often a file extension (``name@file.py``)."""

CODE_RECEIVERS = frozenset("self this cls super np torch tf jnp jax math other model params weights".split())
"""``inputs@self.weight``: a matrix product whose "domain" starts with one of these is code."""

_USERINFO_TAIL = re.compile(r"://[^/?#@]*\Z")

_SCP_REMOTE_USERS = frozenset(("git", "hg", "svn"))
"""``git@host:org/repo`` is a repository URL, not a person's address."""


def _tld_ok(tld: str) -> bool:
    tld = tld.lower()
    return tld in iana_tlds() and tld not in FILE_EXTENSION_TLDS


def _domain_kept(domain: str, keep: list[str]) -> bool:
    domain = domain.lower()
    return any(domain == d or domain.endswith("." + d) for d in keep)


def _is_url_userinfo(text: str, local_start: int) -> bool:
    """``scheme://user@host`` or ``scheme://user:password@host``: user-info, not an address."""
    window = text[max(0, local_start - 80) : local_start]
    tail = re.split(r"[\s\"'`<>()\[\]{},;]", window)[-1]
    return _USERINFO_TAIL.search(tail) is not None


def find_emails(text: str, cfg: PIIConfig) -> list[Finding]:
    """All email-address spans in ``text`` that are personal data under ``cfg``."""
    if "@" not in text:
        return []
    found: list[Finding] = []
    for m in _DOMAIN_AFTER_AT.finditer(text):
        at = m.start()
        local = _LOCAL_BEFORE_AT.search(text, max(0, at - 64), at)
        if local is None:
            continue
        domain, tld = m.group(1), m.group(2)
        start = local.start()
        if _is_url_userinfo(text, start):
            continue
        if not _tld_ok(tld) or _domain_kept(domain, cfg.keep_email_domains):
            continue
        if re.match(r"\d+x\.", domain):  # retina assets: icon@2x.png
            continue
        if domain.split(".", 1)[0] in CODE_RECEIVERS:
            continue
        if local.group(0).lower() in _SCP_REMOTE_USERS and text.startswith(":", m.end()):
            continue
        found.append(Finding(start, m.end(), "email", "email"))
    return found
