"""Public IPv4 and IPv6 addresses, validated with ``ipaddress`` and read in context.

An address is redacted only when it is globally routable: private, loopback, link-local,
documentation (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32), shared, multicast,
reserved and unspecified ranges and ``keep_ips`` (public DNS resolvers) stay. Dotted quads that are
not addresses are recognised by context: a version keyword right before (``version "1.2.3.4"``,
``AssemblyVersion("1.0.0.0")``, ``==2.0.1.5``), a longer dotted run (OIDs, ``1.2.3.4.5``), an OID
keyword on the line, or — on a line with no network word (host, server, ip, http, ...) — four
single digits (section numbers) or a version/dependency word (``Bump grpc to 1.59.0.1``).
CIDR forms (``34.117.0.0/16``) are validated as networks; the prefix length is kept.
"""

from __future__ import annotations

import ipaddress
import re

from llmfoundry_lite.filtering.pii.config import PIIConfig
from llmfoundry_lite.filtering.pii.spans import Finding, line_bounds, resolve_overlaps

_IPV4 = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?!\w|\.\w)")
# Cheap document pre-screens: three dots between digits, and a colon pair with hex between.
_IPV4_HINT = re.compile(r"\.\d{1,3}\.\d{1,3}\.\d")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_IPV6 = re.compile(
    r"(?<![\w:.])((?:[0-9A-Fa-f]{1,4}:|:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4}|:))(?:%[\w.]+)?(?![\w:]|\.\d)"
)
_CIDR_SUFFIX = re.compile(r"/(\d{1,3})(?!\d)")
_VERSION_BEFORE = re.compile(
    r"(?:version|\bver|\brelease|\bbuild|\brevision|\brev|\btag|\bv|section|\bsec|§|\bchapter|\bstep|\bclause|\bpart|"
    r"\bappendix|\bfigure|\btable|\bsyntax|"
    r"==|>=|<=|~=|!=|\^|~)[\W_]{0,12}\Z",
    re.IGNORECASE,
)
_VERSION_WORDS = re.compile(
    r"version|\bbump|upgrade|\bupdate|\brelease|changelog|depend|\bdeps\b|require", re.IGNORECASE
)
_PORT_OR_CIDR = re.compile(r":\d{2,5}\b|/\d{1,2}\b")
_OID_WORDS = re.compile(r"\boid\b|objectidentifier|object_identifier|asn\.?1|snmp|mib\b", re.IGNORECASE)
_IDENTIFIER_PIECE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
NETWORK_WORDS = frozenset(
    """ip ips ipv4 ipv6 host hosts hostname addr address addresses server servers dns proxy gateway
    connect connection ping nameserver listen bind tcp udp endpoint remote peer peers
    route routes subnet inet curl ssh socket network firewall allow deny upstream resolver mirror
    client cidr sink collector blocklist allowlist blacklist whitelist nginx iptables""".split()
)
"""Camel/snake pieces of a line that make a dotted quad an address (``last_ip``, ``remoteAddr``).
``http``/``url`` are not among them: a URL elsewhere on a changelog line says nothing about a
version number; an address inside a URL is caught by the ``://`` rule instead."""


def _has_network_word(line: str) -> bool:
    return any(p.lower() in NETWORK_WORDS for p in _IDENTIFIER_PIECE.findall(line))


def _is_public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
    )


def _parse(candidate: str, cidr: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address as written, or None when it is not one or is a huge CIDR block (``128.0.0.0/1``,
    shorter than /16 for IPv4 or /32 for IPv6), which locates no one."""
    try:
        addr = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if cidr is not None and int(cidr) < (16 if addr.version == 4 else 32):
        return None
    return addr


def _ipv4_in_context_is_address(text: str, m: re.Match[str]) -> bool:
    line_start, line_end = line_bounds(text, m.start())
    before = text[max(line_start, m.start() - 40) : m.start()]
    if _VERSION_BEFORE.search(before):
        return False
    line = text[line_start:line_end]
    if _OID_WORDS.search(line):
        return False
    if before.endswith(("://", "@")) or _PORT_OR_CIDR.match(text, m.end()):
        return True  # http://1.2.3.4, user@1.2.3.4, 1.2.3.4:8080, 1.2.3.4/24
    if _has_network_word(line):
        return True
    if text[m.start() - 1 : m.start()] == "[" and text[m.end() : m.end() + 1] == "]":
        return False  # a reference such as ECMA-262 [15.5.4.11]
    if "<path" in line or ' d="' in line or "points=" in line:
        return False  # SVG path data: runs of decimals such as 3.51.98.32
    # No network word on the line: three leading single digits or four octets under 32 are a
    # section or version number (8.2.4.42, C++ [17.6.5.12]), and a line about versions or
    # dependencies is talking about releases, not hosts.
    octets = [int(g) for g in m.groups()]
    if all(len(g) == 1 for g in m.groups()[:3]) or max(octets) < 32:
        return False
    return not _VERSION_WORDS.search(line)


def _cidr_after(text: str, end: int) -> str | None:
    m = _CIDR_SUFFIX.match(text, end)
    return m.group(1) if m else None


def find_ips(text: str, cfg: PIIConfig) -> list[Finding]:
    """All public IP-address spans in ``text`` (the address only, not a CIDR suffix or port)."""
    keep = set(cfg.keep_ips)
    found: list[Finding] = []
    if _IPV4_HINT.search(text):
        found.extend(_find_ipv4(text, keep))
    found.extend(_find_ipv6(text, keep))
    return resolve_overlaps(found)  # an IPv4-mapped IPv6 address also matches as IPv4


def _find_ipv4(text: str, keep: set[str]) -> list[Finding]:
    found: list[Finding] = []
    for m in _IPV4.finditer(text):
        if any(len(g) > 1 and g[0] == "0" for g in m.groups()):  # zero-padded: not an address literal
            continue
        addr = _parse(m.group(0), _cidr_after(text, m.end()))
        if addr is None or not _is_public(addr) or m.group(0) in keep:
            continue
        if _ipv4_in_context_is_address(text, m):
            found.append(Finding(m.start(), m.end(), "ip_address", "ipv4"))
    return found


def _ipv6_candidates(text: str) -> list[re.Match[str]]:
    """IPv6-shaped matches, tried only where a ``:h:``/``::`` hint sits (the full pattern is slow
    to try at every hex letter of a document)."""
    matches: list[re.Match[str]] = []
    covered = -1
    for hint in _IPV6_HINT.finditer(text):
        if hint.start() < covered:
            continue
        start = hint.start()
        while start > 0 and start > hint.start() - 40 and text[start - 1] in _IPV6_CHARS:
            start -= 1
        m = _IPV6.search(text, start, min(len(text), hint.end() + 60))
        if m is not None:
            matches.append(m)
            covered = m.end()
    return matches


def _find_ipv6(text: str, keep: set[str]) -> list[Finding]:
    found: list[Finding] = []
    for m in _ipv6_candidates(text):
        cand = m.group(1)
        groups = [g for g in re.split(r":+", cand) if g]
        n_groups = len(groups) + (1 if "." in cand else 0)  # an embedded IPv4 tail is two groups
        # ``a::b`` in C++/Rust paths and ``x[1::2]`` slices parse as IPv6; real addresses written in
        # code have at least three groups (compressed) or all eight, and contain a digit.
        if n_groups < 3 or not any(c.isdigit() for c in cand):
            continue
        addr = _parse(cand, _cidr_after(text, m.end(1)))
        if addr is None or not _is_public(addr):
            continue
        if cand in keep or str(ipaddress.ip_address(cand)) in keep:
            continue
        found.append(Finding(m.start(1), m.end(1), "ip_address", "ipv6"))
    return found
