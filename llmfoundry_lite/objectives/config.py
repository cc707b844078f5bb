"""Typed ``objective:`` section of the training config (stdlib only).

Example::

    objective:
      weights: {next_token: 0.5, fim: 0.4, ul2: 0.1}
      fim: {fim_rate: 0.5, spm_rate: 0.5}
      ul2: {mixture: ul2, causal: true}
"""

from __future__ import annotations

from dataclasses import dataclass, field

OBJECTIVE_NAMES = ("next_token", "fim", "ul2")
UL2_MIXTURE_NAMES = ("ul2", "ul2r")


@dataclass
class FIMConfig:
    """Context-level fill-in-the-middle with character-level cut points (Bavarian et al. 2022)."""

    fim_rate: float = 0.5
    """Probability that one document fragment of a FIM-selected context is transformed."""
    spm_rate: float = 0.5
    """Probability that a transformed fragment uses SPM order instead of PSM."""

    def __post_init__(self) -> None:
        for key in ("fim_rate", "spm_rate"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"objective.fim.{key} must lie in [0, 1], got {value}")


@dataclass
class UL2Config:
    """UL2 mixture of denoisers in decoder-only layout ``[mode] inputs <sep> targets <eos>``."""

    mixture: str = "ul2"
    """Denoiser preset: ``ul2`` (the 7 R/S/X denoisers, uniform) or ``ul2r`` (50% S, 25% R, 25% X)."""
    causal: bool = True
    """Causal attention everywhere; False returns ``prefix_len`` so the model can attend bidirectionally
    over ``[mode] inputs <sep>`` (prefix-LM). Every sample of the mixture then carries ``prefix_len``."""

    def __post_init__(self) -> None:
        if self.mixture not in UL2_MIXTURE_NAMES:
            raise ValueError(f"objective.ul2.mixture={self.mixture!r}; choose from {sorted(UL2_MIXTURE_NAMES)}")


@dataclass
class ObjectiveConfig:
    """Mixture of training objectives, drawn per sample."""

    weights: dict[str, float] = field(default_factory=dict)
    """Relative weight of each objective (next_token, fim, ul2), normalised to sum to one. The mapping a
    YAML file gives is the whole mixture (so the default is empty, meaning next-token only: a non-empty
    default would be merged into every YAML mixture)."""
    seed: int = 17
    """Seed of every objective's random draws (combined with sample index and epoch)."""
    fim: FIMConfig = field(default_factory=FIMConfig)
    """Settings of the ``fim`` objective."""
    ul2: UL2Config = field(default_factory=UL2Config)
    """Settings of the ``ul2`` objective."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(OBJECTIVE_NAMES))
        if unknown:
            raise ValueError(
                f"objective.weights: unknown objective(s) {unknown}; choose from {sorted(OBJECTIVE_NAMES)}"
            )
        if any(w < 0 for w in self.weights.values()) or (self.weights and sum(self.weights.values()) <= 0):
            raise ValueError(f"objective.weights must be non-negative and not all zero, got {dict(self.weights)}")

    @property
    def mixture(self) -> dict[str, float]:
        """Probability of each objective in use, by name (empty ``weights``: next-token only)."""
        used = {name: w for name, w in (self.weights or {"next_token": 1.0}).items() if w > 0}
        total = sum(used.values())
        return {name: used[name] / total for name in sorted(used)}

    @property
    def prefix_lm(self) -> bool:
        """Whether samples carry ``prefix_len`` (UL2 in the mixture with a bidirectional prefix)."""
        return "ul2" in self.mixture and not self.ul2.causal
