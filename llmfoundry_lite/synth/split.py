"""Train / heldout split by group (source repository or document), so no source is on both sides.

The distinct groups are put in the order of ``group_key`` (a seeded sha256 of the group: the
order of the input does not matter, and each group's place is computed alone, so Spark sorts
them without gathering the list), then walked once: a group joins heldout when that keeps
heldout at or below ``round(fraction * rows)`` pairs. The heldout share is therefore close to
``fraction`` from below, and a corpus of one group has an empty heldout unless that group fits.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence


def group_key(seed: int, group: str) -> str:
    """A group's place in the walk (hex, so Spark's string sort agrees with Python's)."""
    return hashlib.sha256(f"{seed}\0{group}".encode()).hexdigest()


def walk(sizes_in_order: Iterable[tuple[str, int]], target: int) -> Iterator[str]:
    """The chosen groups of ``(group, pairs)`` given in ``group_key`` order; holds nothing but a counter."""
    filled = 0
    for group, size in sizes_in_order:
        if filled + size <= target:
            filled += size
            yield group


def heldout_groups(groups: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The groups whose pairs go to heldout; ``groups`` holds one entry per pair."""
    sizes = Counter(groups)
    order = sorted(sizes, key=lambda g: group_key(seed, g))
    return set(walk(((g, sizes[g]) for g in order), round(fraction * len(groups))))


def group_of(doc: dict, split_by: str) -> str:
    """The split group of a document: its repository (when known and asked for) or else its id."""
    if split_by == "repository" and doc.get("repository_name"):
        return f"repo:{doc['repository_name']}"
    return f"doc:{doc['id']}"
