"""Secrets: detect-secrets' credential-format plugins plus guarded high-entropy strings.

BigCode ran detect-secrets on a temporary file per document (~45 docs/s/core). Here everything runs
in memory and only on candidate lines: lines holding a 16+ character base64-alphabet run with a
digit (every credential format, and every string the entropy rule accepts without a secret-looking
name, has one) and lines assigning to a secret-looking name (``SECRET_KEY = '...'``). The plugins'
regexes then scan the candidate lines joined together, each plugin only when one of its literal
hints (``PLUGIN_HINTS``) occurs. High-entropy candidates are quoted strings, values assigned to a
secret-looking name (``.env``/YAML/INI, quoted or not) and ``Bearer`` tokens; ``key_guards.is_secret``
decides. Two rules of our own cover what the plugins miss or over-flag: PEM private-key bodies and
passwords in URLs (``postgres://user:pw@host``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

import llmfoundry_lite.filtering.pii.key_guards as key_guards  # the module itself, not the package front door
from llmfoundry_lite.filtering.pii.config import PIIConfig
from llmfoundry_lite.filtering.pii.spans import Finding

_RUN = re.compile(r"[A-Za-z0-9+/=_\-]{16,}")
_DIGIT = re.compile(r"\d")
_SECRET_WORD = r"(?:key|secret|token|passw|pwd|credential|auth)[\w\-]*[\"']?[ \t]*[=:]"
_SECRET_ASSIGNMENT_LOWER = re.compile(_SECRET_WORD)
_SECRET_ASSIGNMENT_ANYCASE = re.compile(_SECRET_WORD, re.IGNORECASE)
# Credential formats whose prefix alone identifies them: never second-guessed as identifiers.
_DISTINCTIVE_PREFIX = re.compile(
    r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|gl[a-z]{2,6}-|xox[a-z]-|https://hooks\.|"
    r"[rs]k_live_|SG\.|sk-|pypi-|npm_|eyJ|sq0csp-|AccountKey=)"
)
# An optional short scheme such as Laravel's ``base64:`` may precede the value inside the quotes.
_QUOTED = re.compile(r"""(['"`])(?:[a-z0-9]{2,10}:)?([A-Za-z0-9+/=_\-.~]{8,})\1""")
# Values assigned to a secret-looking name may use any printable character (Django SECRET_KEY).
_QUOTED_ANY = re.compile(r"""(['"`])([^\s'"`\\]{8,})\1""")
# The lookbehind makes a name start only at a word start: without it, a long identifier is retried
# from each of its characters (quadratic in line length).
_ASSIGNED = re.compile(
    r"""(?<![\w.\-])([A-Za-z_][\w.\-]*)["']?\s*(?:=|:=|:|=>|->)\s*["']?([A-Za-z0-9+/=_\-.~]{8,})(?=["'\s,;)}\]]|\Z)"""
)
_HEX_VALUE = re.compile(r"[0-9a-fA-F]+\Z")
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\Z")
_BEARER = re.compile(r"(?:\b[Bb]earer|[Aa]uthorization:?\s*[\"']?(?:[Tt]oken|[Bb]asic))\s+([A-Za-z0-9+/=_\-.~]{16,})")
_NAME_BEFORE = re.compile(r"""(?<![\w\-])([A-Za-z_][\w\-]*)["'\]]?\s*(?:=|:=|:|=>|,|\(|\s)\s*\Z""")
_PEM = re.compile(
    r"-----BEGIN ((?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP |SSH2 ENCRYPTED )?PRIVATE KEY(?: BLOCK)?)-----"
    r"(.*?)-----END ",
    re.DOTALL,
)
_PEM_HEADER_LINE = re.compile(r"^(?:\\n|\s)*(?:[A-Za-z-]+: [^\n\\]*(?:\\n|\n))*", re.MULTILINE)
_URL_PASSWORD = re.compile(r"://([^\s:/?#@\"'<>]*):([^\s/?#@\"'<>]+)@[\w\[]")
_TEMPLATE = re.compile(r"^(?:\$\{?\w+\}?|\{\{.*\}\}|\{\w*\}|<[^>]*>|%\(?\w*\)?s|\*+|x+|\.+|_+)$", re.IGNORECASE)
_WORD_PASSWORDS = frozenset(("password", "passwd", "pass", "pwd", "secret", "changeme", "admin", "root", "guest"))


PLUGIN_HINTS: dict[str, tuple[str, ...]] = {
    "AWSKeyDetector": ("akia", "asia", "abia", "acca", "a3t", "aws"),
    "AzureStorageKeyDetector": ("accountkey=",),
    "CloudantDetector": ("cl",),
    "GitHubTokenDetector": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "GitLabTokenDetector": ("gl", "gr1348941"),
    "IbmCloudIamDetector": ("key", "pwd", "pass", "token"),
    "IbmCosHmacDetector": ("key",),
    "JwtTokenDetector": ("eyj",),
    "MailchimpDetector": ("-us",),
    "NpmDetector": ("_authtoken",),
    "OpenAIDetector": ("t3blbkfj",),
    "PypiTokenDetector": ("pypi-",),
    "SendGridDetector": ("sg.",),
    "SlackDetector": ("xox", "hooks.slack.com"),
    "SoftlayerDetector": ("sl", "softlayer"),
    "SquareOAuthDetector": ("sq0csp-",),
    "StripeDetector": ("k_live_",),
    "TelegramBotTokenDetector": (":",),
    "TwilioKeyDetector": ("ac", "sk"),
}
"""Lower-case substrings every match of a plugin contains: a plugin whose hints are all absent from
the candidate lines cannot match and is skipped (plugins not listed always run)."""


@lru_cache(maxsize=8)
def _plugins(names: tuple[str, ...]) -> tuple[object, ...]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    by_name = {cls.__name__: cls for cls in get_mapping_from_secret_type_to_class().values()}
    return tuple(by_name[n]() for n in names)


def _candidate_lines(text: str) -> list[tuple[int, str]]:
    """(offset, line) of each line holding a 16+ character base64-alphabet run with a digit, or an
    assignment to a secret-looking name (whose value may use any printable character)."""
    starts = {text.rfind("\n", 0, m.start()) + 1 for m in _RUN.finditer(text) if _DIGIT.search(m.group())}
    lowered = text.lower()
    # Matching lower-cased text is ~5x faster than IGNORECASE; offsets agree unless lower() changed
    # the length (a few non-ASCII letters), in which case the case-insensitive pattern runs instead.
    if len(lowered) == len(text):
        assignments = _SECRET_ASSIGNMENT_LOWER.finditer(lowered)
    else:
        assignments = _SECRET_ASSIGNMENT_ANYCASE.finditer(text)
    starts.update(text.rfind("\n", 0, m.start()) + 1 for m in assignments)
    lines = []
    for start in sorted(starts):
        end = text.find("\n", start)
        lines.append((start, text[start : len(text) if end < 0 else end]))
    return lines


def _plugin_matches(plugin: object, text: str) -> Iterator[str]:
    """The secret strings a plugin reports in ``text``.

    detect-secrets' ``RegexBasedDetector.analyze_string`` yields the capture groups when a pattern
    has any, so for ``(ghp|gho|...)_[A-Za-z0-9_]{36}`` it reports just ``ghp``. Here the longest
    group is taken when it is 16+ characters (the AWS secret-key pattern captures the key itself),
    the whole match otherwise. Plugins with their own ``analyze_string`` (JWT) are called as is.
    """
    from detect_secrets.plugins.base import RegexBasedDetector

    if type(plugin).analyze_string is not RegexBasedDetector.analyze_string:
        yield from plugin.analyze_string(text)  # type: ignore[attr-defined]
        return
    for regex in plugin.denylist:  # type: ignore[attr-defined]
        for m in regex.finditer(text):
            longest = max((g for g in m.groups() if g), key=len, default="")
            yield longest if len(longest) >= 16 else m.group(0)


def _plugin_findings(text: str, lines: list[tuple[int, str]], plugins: tuple[object, ...]) -> Iterator[Finding]:
    """Known credential formats: each plugin scans the candidate lines at once, then every
    occurrence of an accepted secret in ``text`` is reported."""
    joined = "\n".join(line for _, line in lines)
    lowered = joined.lower()
    accepted: dict[str, str] = {}
    for plugin in plugins:
        hints = PLUGIN_HINTS.get(type(plugin).__name__)
        if hints is not None and not any(h in lowered for h in hints):
            continue
        for raw in _plugin_matches(plugin, joined):
            secret = raw.strip(" \t\r\n=:\"'")
            if len(secret) < 8 or secret in accepted or key_guards.is_placeholder(secret):
                continue
            if not _DISTINCTIVE_PREFIX.match(secret) and key_guards.is_wordlike(secret):
                continue
            accepted[secret] = type(plugin).__name__
    for secret, rule in accepted.items():
        pos = text.find(secret)
        while pos >= 0:
            yield Finding(pos, pos + len(secret), "key", rule)
            pos = text.find(secret, pos + len(secret))


def _name_before(line: str, pos: int) -> str:
    m = _NAME_BEFORE.search(line, max(0, pos - 80), pos)
    return m.group(1) if m else ""


def _literal_like(value: str) -> bool:
    """An unquoted value that can be a literal secret rather than a variable or expression: hex, or
    mixed case, or letters with digits — and not a dotted name that reads as words (``cfg.api_key``)."""
    if _HEX_VALUE.match(value):
        return True
    upper, lower = any(c.isupper() for c in value), any(c.islower() for c in value)
    digit = any(c.isdigit() for c in value)
    if not ((upper and lower) or (digit and (upper or lower))):
        return False
    return not (_DOTTED_NAME.match(value) and key_guards.is_wordlike(value))


def _entropy_candidates(line: str) -> Iterator[tuple[int, str, str]]:
    """(position, value, the name it is assigned or passed to) for each string the entropy rule judges."""
    for m in _QUOTED.finditer(line):
        yield m.start(2), m.group(2), _name_before(line, m.start())
    for m in _QUOTED_ANY.finditer(line):
        name = _name_before(line, m.start())
        if ":" not in m.group(2) and key_guards.is_secret_name(name):  # ':' → ARN, URL, time
            yield m.start(2), m.group(2), name
    for m in _ASSIGNED.finditer(line):
        # Unquoted values are literals in .env/INI/YAML but expressions in code (``a.b.c``).
        value = m.group(2)
        if key_guards.is_secret_name(m.group(1)) and _literal_like(value):
            yield m.start(2), m.group(2), m.group(1)
    for m in _BEARER.finditer(line):
        yield m.start(1), m.group(1), "bearer"


def _entropy_findings(line: str, offset: int, cfg: PIIConfig) -> Iterator[Finding]:
    hash_context = bool(key_guards.HASH_WORDS.search(line))
    seen: set[int] = set()
    for pos, value, name in _entropy_candidates(line):
        if pos in seen:
            continue
        seen.add(pos)
        keyword = key_guards.is_secret_name(name)
        if key_guards.is_secret(value, line[max(0, pos - 16) : pos], keyword, hash_context, cfg, name):
            yield Finding(offset + pos, offset + pos + len(value), "key", "high_entropy")


def _pem_findings(text: str) -> Iterator[Finding]:
    if "PRIVATE KEY" not in text:
        return
    for m in _PEM.finditer(text):
        body_start = m.start(2) + _PEM_HEADER_LINE.match(m.group(2)).end()
        body = text[body_start : m.end(2)]
        stripped = body.rstrip(" \t\r\n\\n\"'+")
        b64_chars = sum(c.isalnum() or c in "+/=" for c in stripped)
        if b64_chars < 64 or "..." in stripped or key_guards.is_placeholder(stripped[:200]):
            continue
        yield Finding(body_start, body_start + len(stripped), "key", "pem_private_key")


def _url_password_findings(text: str) -> Iterator[Finding]:
    if "://" not in text:
        return
    for m in _URL_PASSWORD.finditer(text):
        user, password = m.group(1), m.group(2)
        if (
            _TEMPLATE.match(password)
            or password.lower() in _WORD_PASSWORDS
            or password == user
            or "$" in password
            or key_guards.is_placeholder(password)
        ):
            continue
        yield Finding(m.start(2), m.end(2), "key", "url_password")


def find_keys(text: str, cfg: PIIConfig) -> list[Finding]:
    """All secret spans in ``text`` under ``cfg`` (overlaps are resolved by the caller)."""
    found: list[Finding] = list(_pem_findings(text))
    found.extend(_url_password_findings(text))
    lines = _candidate_lines(text)
    if lines:
        found.extend(_plugin_findings(text, lines, _plugins(tuple(cfg.key_plugins))))
    for offset, line in lines:
        found.extend(_entropy_findings(line, offset, cfg))
    return found
