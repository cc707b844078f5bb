"""A seeded, order-independent subsample of a Stack-format corpus for vocabulary training.

Each document gets the key ``sha256(seed, id)``; documents are taken in key order
until the byte budget is spent. The sample therefore does not depend on the order
of input files or on how many files the corpus is split into, and a bigger budget
is a superset of a smaller one. It is drawn in one streaming pass with a bounded heap
(the largest kept key on top), so memory is the budget plus one document, whatever the
size of the corpus.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from dataclasses import dataclass, field

from llmfoundry_lite.corpus.identity import file_identity
from llmfoundry_lite.corpus.readers import iter_documents, list_input_shards
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


def input_signature(inputs: list[str]) -> list[dict]:
    """The identity (path, size, mtime) of every input file: a changed, added or removed file changes it."""
    return [file_identity(s) for s in list_input_shards(inputs)]


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


class _Budgeted:
    """The documents with the smallest keys whose running total stays under a byte budget.

    A document belongs to the sample iff the documents with smaller keys hold fewer than
    ``budget`` bytes. The heap keeps exactly the members among the documents seen so far:
    after a push, the largest key is dropped while the rest already fill the budget (later
    documents can only add to what lies below it), and a document whose key is above a full
    heap's largest is not even stored.
    """

    def __init__(self, budget: int) -> None:
        self.budget, self.total = budget, 0
        self.heap: list[tuple[int, int, int, str]] = []  # (-key, -order, size, text): max-heap on key

    def offer(self, key: bytes, order: int, size: int, text_fn) -> None:
        k = int.from_bytes(key, "big")
        if self.heap and self.total >= self.budget and (k, order) > (-self.heap[0][0], -self.heap[0][1]):
            return
        heapq.heappush(self.heap, (-k, -order, size, text_fn()))
        self.total += size
        while len(self.heap) > 1 and self.total - self.heap[0][2] >= self.budget:
            self.total -= heapq.heappop(self.heap)[2]

    def texts(self) -> list[str]:
        return [text for _, _, _, text in sorted(self.heap, reverse=True)]


def draw_sample(inputs: list[str], budget: int, seed: int, max_doc_bytes: int, num_reserved: int) -> TextSample:
    """Documents by key until ``budget`` bytes, in key order (one streaming pass, memory ~ budget)."""
    skips: Counter = Counter()
    chosen = _Budgeted(budget)
    seen = 0
    for shard in list_input_shards(inputs):
        for doc in iter_documents(shard, skips):
            chosen.offer(doc_key(seed, doc["id"]), seen, min(doc["size"], max_doc_bytes),
                         lambda d=doc: d["content"][:max_doc_bytes])
            seen += 1
    specials = special_tokens(num_reserved)
    texts: list[str] = []
    removed = 0
    digest = hashlib.sha256()
    for text in chosen.texts():
        clean, n = strip_special_strings(text, specials)
        removed += n
        texts.append(clean)
        digest.update(clean.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    nbytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    return TextSample(texts, seen, nbytes, digest.hexdigest(), removed, dict(skips))
