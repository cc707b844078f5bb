"""Tests that tell a random secret from the random-looking strings code is full of.

Entropy alone flags hashes, UUIDs, SRI/lockfile integrity values, base64-embedded images and
fonts, long identifiers and paths, and the example keys of documentation. Each guard here names
one of those families; ``is_secret`` combines them with detect-secrets' own Shannon-entropy
definition so the entropy maths stays the library's.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from functools import lru_cache

from llmfoundry_lite.filtering.pii.config import PIIConfig

HASH_HEX_LENGTHS = frozenset((32, 40, 56, 64, 96, 128))
"""md5, sha1, sha224, sha256, sha384, sha512 digests written in hex."""

_HEX = re.compile(r"[0-9a-fA-F]+\Z")
_HEX_LETTERS = re.compile(r"[a-f]+\Z")
_BASE64 = re.compile(r"[A-Za-z0-9+/=_\-]+\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_PLACEHOLDER = re.compile(
    r"example|sample|dummy|fake|placeholder|changeme|change_me|your|xxxx|redacted|insert|replace|"
    r"secret_?here|todo|fixme|lorem|0123456789|123456789|abcdefgh|passw(?:or)?d|secret|token",
    re.IGNORECASE,
)
_HASH_PREFIX = re.compile(r"(?:sha\d{1,3}|md5|blake2[bs]?|h1)[-:=]\Z", re.IGNORECASE)
_DATA_URI = re.compile(r"base64,\Z")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}|\Z)")
# Cloud resource ids such as ``i-0abc...``, ``sg-...``, ``dfm-mUdVSfDcT1F4SGhw6fyF``: a short
# lower-case type prefix and a dash. Ids are not secrets unless a secret-looking name holds them.
_RESOURCE_ID = re.compile(r"[a-z]{1,5}[-_][A-Za-z0-9]+\Z")
# Camel/snake/kebab pieces: "Abc", "abc", "ABC" (an uppercase run not followed by lowercase).
_WORD_PIECE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
COMMON_BIGRAMS = frozenset(
    """ab ac ad ag ai al am an ap ar as at au ba be bj bl bu by ca ce ch ci ck cl co ct da dd de di do ds
    du ea ec ed ee ef el em en ep er es et ex ey fa ff fi fo fr fu ge gs ha he hi ho ic id ie if ig il im
    in io ip ir is it iv je ke la ld le lf li ll lo ls lt lu ly ma me mi mo mp na nc nd ne ng ni no ns nt
    nu ob oc od of ol om on op or os ot ou ow pa pe pl po pp pr pt qu ra re rg ri rm rn ro rr rs rt ru ry
    sa se sh si so sp ss st su sy ta te th ti to tr ts tt tu ty ue ul um un up ur us ut va ve wa wh wi wr
    xc xt yp ys yt ze""".split()
)
"""The most frequent letter pairs inside identifier pieces and words of CPython's standard library
(the 175 pairs that make up 90% of all pair occurrences in 150 of its modules)."""

SECRET_NAME = re.compile(r"key|token|secret|passw|pwd|credential|auth|signature|salt\b|bearer", re.IGNORECASE)
"""A variable/field name that holds a secret."""
STRONG_SECRET_NAME = re.compile(r"secret|passw|pwd|token|api_?key|access_?key|private", re.IGNORECASE)
"""Names strong enough to make a UUID a secret (Heroku API keys are UUIDs; most UUIDs are ids)."""
NOT_SECRET_NAME = re.compile(
    r"keyword|keyboard|monkey|hotkey|keys?_?(?:name|path|file|id|size|len|length|type|code|map|event|down|up|press)|"
    r"(?:sort|cache|primary|foreign|dict|map|hash|lookup|partition|row|column|group|result|input|output|item|"
    r"field|range|index|attr|attribute|label|translation|message|state)_?keys?|error|exception|"
    r"tokeni[sz]|tokens?_?(?:type|count|len|length|ids?|kind|list)|author|hash|digest|checksum|sha\d|md5|fingerprint|"
    r"(?:next|page|continuation|pagination|sync|cursor|csrf)_?token|(?:s3|object|bucket|file|path)_?key|arn\b|arn_",
    re.IGNORECASE,
)
HASH_WORDS = re.compile(
    r"sha\d*|md5|hash|digest|checksum|integrity|commit|etag|fingerprint|\brev\b|revision|blake|crc|"
    r"\bsum\b|\bsri\b",
    re.IGNORECASE,
)


@lru_cache(maxsize=1)
def _entropy_plugins() -> tuple[object, object]:
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString

    return Base64HighEntropyString(), HexHighEntropyString()


def shannon_entropy(value: str) -> float:
    """detect-secrets' entropy of ``value`` (hex strings use its all-digits correction).

    detect-secrets counts only characters of its plugin's alphabet, which would score punctuation-
    rich secrets (Django's ``SECRET_KEY``) near zero; those get the same formula over all characters.
    """
    b64, hexp = _entropy_plugins()
    if _HEX.match(value):
        return hexp.calculate_shannon_entropy(value)  # type: ignore[attr-defined]
    if _BASE64.match(value):
        return b64.calculate_shannon_entropy(value)  # type: ignore[attr-defined]
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_ID_NAME = re.compile(
    r"(?:\b|[_\-.]|(?<=[a-z]))(?:id|ids|uid|guid|uuid|version|etag|arn|name|type|path|url|digest)\Z", re.IGNORECASE
)
_SEPARATORS = re.compile(r"[-/_.]")


def is_id_name(name: str) -> bool:
    """``client_id``, ``InstallId``, ``"version"``, ``etag``: the name says the value is an identifier."""
    return bool(_ID_NAME.search(name))


def is_identifier_shaped(value: str) -> bool:
    """``FacebookAI/xlm-mlm-en-2048``, ``Cryptography_HAS_PSK_TLSv1_3``: three or more separated
    segments (of 2+ characters), two thirds of them one-case, Capitalised or numeric. Random base64
    rarely has three separators, and its segments mix case."""
    segments = [s for s in _SEPARATORS.split(value) if len(s) >= 2]
    if len(segments) < 3:
        return False
    plain = sum(1 for s in segments if s.islower() or s.isupper() or s.isdigit() or s.istitle())
    return plain * 3 >= len(segments) * 2


def is_named_non_secret(name: str) -> bool:
    """Names that say what a random-looking value is instead: ``NextToken``, ``cache_key``,
    ``password_hash``, ``S3Key``."""
    return bool(SECRET_NAME.search(name)) and bool(NOT_SECRET_NAME.search(name))


def is_secret_name(name: str) -> bool:
    """True when ``name`` (``api_key``, ``X-Auth-Token``, ``setPassword``) names a secret."""
    return bool(SECRET_NAME.search(name)) and not NOT_SECRET_NAME.search(name)


def is_wordlike(value: str) -> bool:
    """True when the letter pairs of ``value`` read like words (identifiers, paths, prose).

    Inside each camel/snake/kebab piece, the share of adjacent letter pairs that are among
    ``COMMON_BIGRAMS`` is ~0.2 for random letters (175 of 676 pairs) and above 0.6 for
    ``someLongFunctionName``, ``usr/lib/python3/dist-packages`` or ``LIBXML2_VERSION_STRING``.
    Measured on random strings: 1% of mixed-case base64, 1% of lower-case and 2% of upper-case
    alphanumerics score 0.6 or more.
    """
    # Pieces of hex letters only (``deadbeef`` in a digest) are no evidence either way.
    pieces = [p for p in (piece.lower() for piece in _WORD_PIECE.findall(value)) if not _HEX_LETTERS.match(p)]
    pairs = [piece[i : i + 2] for piece in pieces for i in range(len(piece) - 1)]
    if len(pairs) < 4:
        return False
    return sum(p in COMMON_BIGRAMS for p in pairs) / len(pairs) >= 0.6


def is_sequential(value: str) -> bool:
    """Runs such as ``abcdef012345`` or ``aaaaaaaa``: more than half the neighbours step by 0 or 1."""
    steps = sum(1 for a, b in zip(value, value[1:], strict=False) if ord(b) - ord(a) in (0, 1))
    return steps > (len(value) - 1) / 2


def decodes_to_text(value: str) -> bool:
    """Base64 that decodes to printable ASCII is encoded data (``SGVsbG8gd29ybGQ=``), not key bytes."""
    padded = value + "=" * (-len(value) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_" if ("-" in value or "_" in value) else None, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) < 9:
        return False
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in raw)
    return printable / len(raw) >= 0.95


def is_placeholder(value: str) -> bool:
    """Documentation keys (``AKIAIOSFODNN7EXAMPLE``), ``your-api-key``, ``xxxx``, ``0123456789``."""
    return bool(_PLACEHOLDER.search(value)) or is_sequential(value)


def is_hash_prefixed(before: str) -> bool:
    """The value follows ``sha512-``, ``sha256:``, ``md5=`` or go.sum's ``h1:``."""
    return bool(_HASH_PREFIX.search(before))


def entropy_threshold(length: int, limit: float) -> float:
    """``limit``, lowered for short strings whose entropy cannot reach it.

    Shannon entropy of ``n`` characters is at most log2(n), so detect-secrets' 4.5 bits can never
    fire below 23 characters; a short random string sits about half a bit under that ceiling.
    """
    return min(limit, math.log2(max(length, 2)) - 0.7)


def is_secret(value: str, before: str, keyword: bool, hash_context: bool, cfg: PIIConfig, name: str = "") -> bool:
    """Whether a candidate string is a secret, given the text ``before`` it on its line.

    ``keyword``: the value is assigned or passed to a secret-looking ``name``. ``hash_context``: the
    line talks about hashes/checksums/commits.
    """
    n = len(value)
    if is_named_non_secret(name):
        return False
    if n < (cfg.keyword_key_min_length if keyword else cfg.key_min_length):
        return False
    if n > cfg.key_max_length and not keyword:
        return False
    if _DATA_URI.search(before) or is_hash_prefixed(before) or _TIMESTAMP.match(value):
        return False
    if is_placeholder(value) or is_wordlike(value):
        return False
    if _HEX.match(value):
        return _hex_is_secret(value, keyword, hash_context, cfg)
    if hash_context and not keyword:
        return False
    if not keyword and not _BASE64.match(value):  # '.' or '~': file names, versions, not base64
        return False
    if _UUID.match(value) and not STRONG_SECRET_NAME.search(name):
        return False
    if not keyword and (_RESOURCE_ID.match(value) or is_id_name(name) or is_identifier_shaped(value)):
        return False
    if keyword and n < 24 and value.isalpha():  # "SubscribedWorkteams": a word, not a secret
        return False
    if decodes_to_text(value) and not keyword:
        return False
    if not keyword and not _mixed_alphabet(value):
        return False
    limit = cfg.keyword_entropy_limit if keyword else cfg.base64_entropy_limit
    return shannon_entropy(value) > entropy_threshold(n, limit)


def _mixed_alphabet(value: str) -> bool:
    """Upper case, lower case and a digit: a random base64 string of 20+ characters lacks one of
    them with probability below 1e-4, while snake/kebab/SCREAMING identifiers always do."""
    return any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value)


def _hex_is_secret(value: str, keyword: bool, hash_context: bool, cfg: PIIConfig) -> bool:
    # A bare hex string is a digest, commit or test vector far more often than a key: without a
    # secret-looking name, digest lengths are hashes and shorter strings are ids (ObjectId: 24).
    if hash_context and (not keyword or len(value) in HASH_HEX_LENGTHS):
        return False  # a digest-length hex on a line about checksums is a digest, whatever its name
    if not keyword and (len(value) in HASH_HEX_LENGTHS or len(value) < 32):
        return False
    if len(value) < cfg.key_min_length:  # 16-hex values under a "Key" name are ids, not keys
        return False
    if value.isdigit():
        return False
    limit = min(cfg.hex_entropy_limit, cfg.keyword_entropy_limit) if keyword else cfg.hex_entropy_limit
    return shannon_entropy(value) > entropy_threshold(len(value), limit)
