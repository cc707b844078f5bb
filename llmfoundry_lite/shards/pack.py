"""Train/val assignment and llm-foundry-style packing of token streams.

Every document's tokens are followed by the end-of-text id and appended to one
stream per split, which is cut into samples of exactly ``max_seq_len`` tokens. A
document may therefore start in one sample and end in the next; end-of-text ids
are the only document boundaries the loader sees (the objectives split a context
on them). The last partial sample of a stream is padded with the pad id or dropped.
"""

from __future__ import annotations

import hashlib

import numpy as np

SPLITS = ("train", "val")


SPLIT_RULES = {
    "repository": "val iff sha256(split_seed as 8 little-endian bytes + 'repo:' + repository_name) read as a "
                  "little-endian 64-bit integer < val_fraction * 2^64; documents without a repository_name use "
                  "'content:' + their content instead",
    "content": "val iff sha256(split_seed as 8 little-endian bytes + 'content:' + content) < val_fraction * 2^64 "
               "(first 8 bytes, little-endian)",
}


def split_key(doc: dict, split_by: str) -> str:
    """What decides a document's side: its repository (all its files together) or its content."""
    if split_by == "repository" and doc.get("repository_name"):
        return "repo:" + doc["repository_name"]
    return "content:" + doc["content"]


def split_of(key: str, seed: int, val_fraction: float) -> str:
    """``"val"`` for a stable ``val_fraction`` share of split keys (``split_key``).

    Hashing the repository or the content (not the position or the file) keeps the split
    fixed when the corpus is re-sharded or reordered, and sends exact duplicates to the
    same split.
    """
    digest = hashlib.sha256(seed.to_bytes(8, "little") + key.encode("utf-8", "surrogatepass")).digest()
    return "val" if int.from_bytes(digest[:8], "little") < val_fraction * 2**64 else "train"


class Packer:
    """Accumulates documents and hands out full ``max_seq_len`` samples as they fill."""

    def __init__(self, max_seq_len: int, eos_id: int) -> None:
        self.max_seq_len = max_seq_len
        self.eos_id = eos_id
        self._pending: list[np.ndarray] = []
        self._pending_len = 0
        self.tokens = 0
        self.docs = 0

    def add(self, ids: list[int] | np.ndarray) -> list[np.ndarray]:
        """Append one document (+ end-of-text); return the samples it completed."""
        doc = np.empty(len(ids) + 1, dtype=np.int32)
        doc[:-1] = ids
        doc[-1] = self.eos_id
        self._pending.append(doc)
        self._pending_len += len(doc)
        self.tokens += len(doc)
        self.docs += 1
        if self._pending_len < self.max_seq_len:
            return []
        stream = np.concatenate(self._pending)
        n_full = len(stream) // self.max_seq_len
        cut = n_full * self.max_seq_len
        rest = stream[cut:]
        self._pending = [rest] if len(rest) else []
        self._pending_len = len(rest)
        return list(stream[:cut].reshape(n_full, self.max_seq_len))

    def finish(self, remainder: str, pad_id: int) -> tuple[np.ndarray | None, int]:
        """The last partial sample (padded) or None, and how many pad ids it holds."""
        if remainder not in ("pad", "drop"):
            raise ValueError(f"unknown remainder {remainder!r}; choose from ['pad', 'drop']")
        pending, self._pending, self._pending_len = self._pending, [], 0
        if not pending or remainder == "drop":
            return None, 0
        stream = np.concatenate(pending)
        sample = np.full(self.max_seq_len, pad_id, dtype=np.int32)
        sample[: len(stream)] = stream
        return sample, self.max_seq_len - len(stream)

    @property
    def pending(self) -> int:
        """Tokens waiting for the next sample (dropped tokens if ``finish('drop')`` follows)."""
        return self._pending_len
