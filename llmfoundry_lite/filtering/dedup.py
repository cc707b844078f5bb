"""Exact and near deduplication: per-document fingerprints (pass 1) and global clustering (pass 2).

- **Exact**: SHA-256 of the content with every whitespace run collapsed to one space and the
  ends stripped (``" ".join(text.split())``), so re-indented or CRLF copies count as equal.
- **Near**: datasketch MinHash over the set of 5-gram shingles of tokens, where tokens are the
  runs of ``[A-Za-z_0-9]`` (BigCode: split on ``[^A-Za-z_0-9]``), each hashed with CRC-32;
  256 permutations (datasketch's ``affine32`` scheme); LSH with
  b=25 bands of r=10 rows (BigCode's choice for Jaccard 0.7). Documents that share a band bucket
  are linked, and a cluster is a connected component of those links — a relation that does not
  depend on insertion order, so the local (datasketch ``MinHashLSH``) and Spark paths agree.
- **Representative**: the member with the smallest *ordinal* (input shard index, then position
  in the shard): the first copy in input order wins, whatever the worker count.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import DedupConfig

TOKEN = re.compile(r"[A-Za-z_0-9]+")
ORDINAL_SHIFT = 40  # ordinal = shard_index << 40 | position: 2**40 documents per shard


def make_ordinal(shard_index: int, position: int) -> int:
    """Global, input-order key of a document (the representative rule picks the smallest)."""
    return (shard_index << ORDINAL_SHIFT) | position


def shard_of(ordinal: int) -> int:
    """Input shard index of an ordinal."""
    return ordinal >> ORDINAL_SHIFT


def content_hash(text: str) -> str:
    """Hex SHA-256 (first 128 bits) of ``text`` after whitespace normalisation."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def shingles(text: str, ngram: int) -> set[bytes]:
    """Distinct ``ngram``-token shingles (tokens joined by one space); shorter texts give one shingle."""
    tokens = TOKEN.findall(text)
    if not tokens:
        return set()
    if len(tokens) <= ngram:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i:i + ngram]).encode() for i in range(len(tokens) - ngram + 1)}


@functools.lru_cache(maxsize=4)
def _permutations(num_perm: int, seed: int) -> np.ndarray:
    from datasketch import MinHash

    return MinHash(num_perm=num_perm, seed=seed).permutations


def minhash_signature(text: str, cfg: DedupConfig) -> np.ndarray | None:
    """MinHash values (uint32, ``num_perm``) of the document's shingles; None if it has no tokens."""
    from datasketch import MinHash

    grams = shingles(text, cfg.ngram)
    if not grams:
        return None
    # zlib.crc32 is a C builtin: 3x faster per shingle than datasketch's default sha1_hash32 wrapper;
    # the affine32 scheme mixes it with the MurmurHash3 finalizer before permuting.
    mh = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, permutations=_permutations(cfg.num_perm, cfg.seed),
                 scheme="affine32", hashfunc=zlib.crc32)
    mh.update_batch(list(grams))
    return np.asarray(mh.hashvalues, dtype=np.uint32)


class UnionFind:
    """Disjoint sets over ordinals whose root is always the smallest member."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while x != root:  # path compression
            self.parent[x], x = root, self.parent.get(x, x)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo
            self.parent.setdefault(lo, lo)

    def clusters(self) -> dict[int, list[int]]:
        """Root (= smallest member) -> sorted members, for every set with two or more members."""
        out: dict[int, list[int]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return {root: sorted(m) for root, m in out.items() if len(m) > 1}


def exact_clusters(ordinals: np.ndarray, hashes: list[str]) -> dict[int, list[int]]:
    """Groups of ordinals with equal normalized-content hash; key = smallest ordinal."""
    groups: dict[str, list[int]] = {}
    for ordinal, h in zip(ordinals.tolist(), hashes, strict=True):
        groups.setdefault(h, []).append(ordinal)
    return {min(g): sorted(g) for g in groups.values() if len(g) > 1}


def near_clusters_local(ordinals: np.ndarray, signatures: np.ndarray, cfg: DedupConfig) -> dict[int, list[int]]:
    """Connected components of LSH band-bucket co-membership, via datasketch's in-memory ``MinHashLSH``."""
    from datasketch import LeanMinHash, MinHashLSH

    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, params=(cfg.bands, cfg.rows))
    sketches = [LeanMinHash(seed=cfg.seed, hashvalues=sig, scheme="affine32") for sig in signatures]
    with lsh.insertion_session() as session:
        for ordinal, sketch in zip(ordinals.tolist(), sketches, strict=True):
            session.insert(ordinal, sketch, check_duplication=False)
    uf = UnionFind()
    for ordinal, sketch in zip(ordinals.tolist(), sketches, strict=True):
        for other in lsh.query(sketch):
            if other != ordinal:
                uf.union(ordinal, other)
    return uf.clusters()


def band_keys(signatures: np.ndarray, cfg: DedupConfig) -> np.ndarray:
    """(N, bands) array of band fingerprints: each band's ``rows`` values viewed as one bytes key."""
    used = signatures[:, : cfg.bands * cfg.rows].astype(">u4")  # fixed byte order: same keys on every host
    return np.ascontiguousarray(used).view(f"V{4 * cfg.rows}").reshape(len(signatures), cfg.bands)


def decisions(exact: dict[int, list[int]], near: dict[int, list[int]]) -> dict[int, tuple[str, int, int]]:
    """ordinal -> (reason, representative ordinal, cluster size) for every document that is dropped."""
    out: dict[int, tuple[str, int, int]] = {}
    for rep, members in exact.items():
        for m in members[1:]:
            out[m] = ("exact_duplicate", rep, len(members))
    for rep, members in near.items():
        for m in members[1:]:
            out[m] = ("near_duplicate", rep, len(members))
    return out
