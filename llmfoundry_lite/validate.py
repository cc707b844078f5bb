"""Checks shared by the config dataclasses' ``__post_init__`` (standard library only)."""

from __future__ import annotations

from collections.abc import Iterable


def require_positive(cfg: object, keys: Iterable[str], section: str = "") -> None:
    """Raise ``ValueError`` naming ``<section>.<key>`` for the first of ``keys`` that is not > 0."""
    for key in keys:
        value = getattr(cfg, key)
        if value <= 0:
            raise ValueError(f"{section}{key} must be positive, got {value}")
