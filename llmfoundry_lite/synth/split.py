"""Train / heldout split by group (source repository or document), so no source is on both sides.

The distinct groups are shuffled with ``seed`` (sorted first: the order of the input does not
matter), then walked once: a group joins heldout when that keeps heldout at or below
``round(fraction * rows)`` pairs. The heldout share is therefore close to ``fraction`` from
below, and a corpus of one group has an empty heldout unless that group fits.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence


def heldout_groups(groups: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The groups whose pairs go to heldout; ``groups`` holds one entry per pair."""
    sizes = Counter(groups)
    target = round(fraction * len(groups))
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    chosen: set[str] = set()
    filled = 0
    for group in order:
        if filled + sizes[group] <= target:
            chosen.add(group)
            filled += sizes[group]
    return chosen


def group_of(doc: dict, split_by: str) -> str:
    """The split group of a document: its repository (when known and asked for) or else its id."""
    if split_by == "repository" and doc.get("repository_name"):
        return f"repo:{doc['repository_name']}"
    return f"doc:{doc['id']}"
