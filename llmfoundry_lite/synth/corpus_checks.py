"""Corpus-wide drops: benchmark decontamination, then near-duplicates, over each pair's program text.

Both reuse the filter stage's machinery: ``filtering/decontam.py``'s n-gram matcher and
``filtering/dedup.py``'s MinHash signatures (its shingles, permutations and seed), bucketed
with datasketch's ``MinHashLSH`` sized for ``near_dup_threshold``. Unlike the filter stage's
connected components, each LSH candidate is confirmed by the signatures' estimated Jaccard
similarity and a pair is compared only with pairs already kept, first in input order: two
copies keep the first, and a chain A~B~C with A and C far apart cannot drop C through B.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from llmfoundry_lite.filtering.config import DecontamConfig, DedupConfig
from llmfoundry_lite.filtering.decontam import decontaminator
from llmfoundry_lite.filtering.dedup import minhash_signature


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


def near_duplicates(texts: Sequence[str], threshold: float, dedup: DedupConfig | None = None) -> list[int | None]:
    """Per text the index of the earlier kept text it nearly duplicates (estimated Jaccard >= ``threshold``), or None.

    A text without tokens has no signature and is never a duplicate."""
    from datasketch import LeanMinHash, MinHashLSH

    dedup = dedup or DedupConfig()
    # datasketch picks bands x rows for this threshold (0.5 -> 42 x 6; the filter stage's 25 x 10 suits 0.7).
    lsh = MinHashLSH(threshold=threshold, num_perm=dedup.num_perm)
    kept: dict[int, np.ndarray] = {}
    out: list[int | None] = []
    for i, text in enumerate(texts):
        sig = minhash_signature(text, dedup)
        if sig is None:
            out.append(None)
            continue
        sketch = LeanMinHash(seed=dedup.seed, hashvalues=sig, scheme="affine32")
        similar = [j for j in lsh.query(sketch) if signatures_agree(kept[j], sig, threshold)]
        if similar:
            out.append(min(similar))
            continue
        out.append(None)
        kept[i] = sig
        lsh.insert(i, sketch, check_duplication=False)
    return out
