"""Corpus-wide drops: benchmark decontamination, then near-duplicates, over each pair's program text.

Both reuse the filter stage's machinery: ``filtering/decontam.py``'s n-gram matcher and
``filtering/dedup.py``'s MinHash signatures (its shingles, permutations and seed) and band keys,
with datasketch's bands x rows for ``near_dup_threshold`` (0.5: 42 x 6).

The near-duplicate rule, the same on both engines (``spark_synthesis.near_duplicate_pairs``):

- Pairs are walked in input order. A pair is compared with the **first pair of each LSH bucket it
  falls in** (star edges to the bucket's smallest member, as the filter stage builds them), never
  with every bucket member: at most one comparison per band, so the work is linear in bucket size
  (3,000 copies that differ in one literal cost at most 42 x 3,000 comparisons, not 4.5 million).
- A comparison is confirmed when the signatures' estimated Jaccard similarity (the share of equal
  values) reaches the threshold. A pair is dropped when a confirmed bucket-first is *kept*, and names
  the smallest such one. Unlike the filter stage's connected components, links do not chain: with
  A~B~C, B dropped by A and C far from A, C is kept.
- The price of linear work: a pair near a kept pair K stays when K is the first of none of the
  buckets they share, i.e. an earlier pair opened every one of them and each such opener was
  itself dropped or is not near enough. (``MinHashLSH`` queried every kept bucket member instead:
  quadratic in a hot bucket, as when thousands of pairs collide without being confirmed.)
- A pair whose signature equals an earlier one's takes that one's fate: dropped as its duplicate
  when it is kept, else as a duplicate of what dropped it. It opens no bucket. A text without
  tokens has no signature and is never a duplicate.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from llmfoundry_lite.filtering.config import DecontamConfig, DedupConfig
from llmfoundry_lite.filtering.decontam import decontaminator
from llmfoundry_lite.filtering.dedup import band_keys, minhash_signature


def contaminated(texts: Sequence[str], cfg: DecontamConfig) -> tuple[list[bool], Counter]:
    """Per text whether it holds a benchmark text, and the count of hits per benchmark."""
    if not cfg.enabled:
        return [False] * len(texts), Counter()
    matcher = decontaminator(cfg)
    hits = [matcher.find(t) for t in texts]
    return [h is not None for h in hits], Counter(h.benchmark for h in hits if h is not None)


def signatures_agree(a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    """Two MinHash signatures' estimated Jaccard similarity (share of equal values) reaches ``threshold``;
    the confirmation step of both engines' near-dedup."""
    return bool(np.mean(a == b) >= threshold)


@functools.lru_cache(maxsize=8)
def lsh_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands and rows ``MinHashLSH`` picks for ``threshold`` (datasketch's false positive/negative trade-off)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def lsh_config(threshold: float, dedup: DedupConfig) -> DedupConfig:
    """``dedup`` with the threshold and the bands x rows of :func:`lsh_shape`, for ``band_keys``."""
    bands, rows = lsh_shape(threshold, dedup.num_perm)
    return replace(dedup, threshold=threshold, bands=bands, rows=rows)


def bucket_keys(signature: np.ndarray, shape: DedupConfig) -> list[bytes]:
    """The LSH bucket key of each band of ``signature`` (``filtering.dedup.band_keys``)."""
    return [key.tobytes() for key in band_keys(signature[None, :], shape)[0]]


def near_duplicates(texts: Sequence[str], threshold: float, dedup: DedupConfig | None = None) -> list[int | None]:
    """Per text the index of the kept text it nearly duplicates, or None (the rule is the module docstring's)."""
    shape = lsh_config(threshold, dedup or DedupConfig())
    first_of: dict[tuple[int, bytes], int] = {}  # bucket (band, key) -> the first text in it
    opener: dict[int, np.ndarray] = {}  # signatures of the texts that are first in a bucket
    same: dict[bytes, int] = {}  # signature -> the first text with it
    out: list[int | None] = []
    for i, text in enumerate(texts):
        sig = minhash_signature(text, shape)
        if sig is None:  # no tokens: no signature, never a duplicate
            out.append(None)
            continue
        first = same.setdefault(sig.tobytes(), i)
        if first != i:  # a copy takes its first's fate
            out.append(first if out[first] is None else out[first])
            continue
        buckets = list(enumerate(bucket_keys(sig, shape)))
        firsts = sorted({first_of[b] for b in buckets if b in first_of})
        kept = [f for f in firsts if out[f] is None and signatures_agree(opener[f], sig, threshold)]
        out.append(kept[0] if kept else None)
        for b in buckets:
            if first_of.setdefault(b, i) == i:
                opener[i] = sig
    return out
