"""Typed ``objective:`` section of the training config (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass, field

OBJECTIVE_NAMES = ("next_token",)


@dataclass
class ObjectiveConfig:
    """Mixture of training objectives, drawn per sample."""

    weights: dict[str, float] = field(default_factory=lambda: {"next_token": 1.0})
    """Relative weight of each objective; normalised to sum to one."""
    seed: int = 17
    """Seed of every objective's random draws (combined with sample index and epoch)."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(OBJECTIVE_NAMES))
        if unknown:
            raise ValueError(f"objective.weights: unknown objective(s) {unknown}; choose from {sorted(OBJECTIVE_NAMES)}")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError(f"objective.weights must be non-negative and not all zero, got {dict(self.weights)}")
