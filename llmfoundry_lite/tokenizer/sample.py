"""A seeded, order-independent subsample of a Stack-format corpus for vocabulary training.

Each document gets the key ``sha256(seed, id)``; documents are taken in key order
until the byte budget is spent. The sample therefore does not depend on the order
of input files or on how many files the corpus is split into, and a bigger budget
is a superset of a smaller one.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from llmfoundry_lite.corpus.readers import iter_documents, list_input_shards, shard_size_bytes
from llmfoundry_lite.tokenizer.special import special_tokens


@dataclass
class TextSample:
    """The training texts plus what is needed to describe them in a manifest."""

    texts: list[str]
    docs_seen: int
    bytes: int
    sha256: str
    special_strings_removed: int
    reader_skips: dict[str, int] = field(default_factory=dict)


def input_signature(inputs: list[str]) -> list[tuple[str, int]]:
    """``(path, bytes)`` of every input shard: a cheap stand-in for "the input did not change"."""
    return [(s.path, shard_size_bytes(s)) for s in list_input_shards(inputs)]


def doc_key(seed: int, doc_id: str) -> bytes:
    """The sampling key of a document: stable across runs, machines and file layouts."""
    return hashlib.sha256(f"{seed}\0{doc_id}".encode()).digest()


def strip_special_strings(text: str, specials: list[str]) -> tuple[str, int]:
    """Remove literal special-token strings so BPE never learns them (StarCoder does the same)."""
    removed = 0
    if "<" not in text:
        return text, 0
    for s in specials:
        if s in text:
            removed += text.count(s)
            text = text.replace(s, "")
    return text, removed


def draw_sample(inputs: list[str], budget: int, seed: int, max_doc_bytes: int, num_reserved: int) -> TextSample:
    """Pick documents by key until ``budget`` bytes, then read their texts in key order."""
    skips: Counter = Counter()
    shards = list_input_shards(inputs)
    keyed: list[tuple[bytes, int]] = []
    seen = 0
    for shard in shards:
        for doc in iter_documents(shard, skips):
            keyed.append((doc_key(seed, doc["id"]), min(doc["size"], max_doc_bytes)))
            seen += 1
    keyed.sort()
    chosen: set[bytes] = set()
    total = 0
    for key, size in keyed:
        if total >= budget:
            break
        chosen.add(key)
        total += size
    picked: list[tuple[bytes, str]] = []
    for shard in shards:
        for doc in iter_documents(shard, Counter()):
            key = doc_key(seed, doc["id"])
            if key in chosen:
                picked.append((key, doc["content"][:max_doc_bytes]))
    picked.sort()
    specials = special_tokens(num_reserved)
    texts: list[str] = []
    removed = 0
    digest = hashlib.sha256()
    for _, text in picked:
        clean, n = strip_special_strings(text, specials)
        removed += n
        texts.append(clean)
        digest.update(clean.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    nbytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    return TextSample(texts, seen, nbytes, digest.hexdigest(), removed, dict(skips))
