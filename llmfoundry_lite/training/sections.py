"""Typed ``fsdp_config:``, ``loggers:`` and ``callbacks:`` sections (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SHARDING = ("FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD")
MIXED_PRECISION = ("DEFAULT", "PURE", "FULL")
STATE_DICT_TYPES = ("full", "sharded")
WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class FSDPConfig:
    """Composer FSDP settings (``parallelism_config.fsdp``); used on GPU runs."""

    sharding_strategy: str = "FULL_SHARD"
    """FULL_SHARD, SHARD_GRAD_OP, HYBRID_SHARD (shard within a node, replicate across) or NO_SHARD."""
    mixed_precision: str = "DEFAULT"
    """FSDP mixed-precision policy: DEFAULT (fp32 reduce), PURE (low-precision all), FULL (fp32 all)."""
    activation_checkpointing: bool = False
    """Recompute each block's activations in backward (saves memory, costs ~1/3 more compute)."""
    activation_cpu_offload: bool = False
    """Offload checkpointed activations to CPU."""
    limit_all_gathers: bool = True
    """Rate-limit all-gathers so prefetching does not blow up memory."""
    state_dict_type: str = "full"
    """Checkpoint layout: full (one file, rank 0) or sharded (one per rank, faster at scale)."""

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("sharding_strategy", self.sharding_strategy, SHARDING),
            ("mixed_precision", self.mixed_precision, MIXED_PRECISION),
            ("state_dict_type", self.state_dict_type, STATE_DICT_TYPES),
        ):
            if value not in allowed:
                raise ValueError(f"fsdp_config.{key}={value!r}; choose from {sorted(allowed)}")

    def to_composer(self) -> dict[str, Any]:
        """The dict Composer's ``parallelism_config={'fsdp': ...}`` expects."""
        return {
            "sharding_strategy": self.sharding_strategy,
            "mixed_precision": self.mixed_precision,
            "activation_checkpointing": self.activation_checkpointing,
            "activation_cpu_offload": self.activation_cpu_offload,
            "limit_all_gathers": self.limit_all_gathers,
            "state_dict_type": self.state_dict_type,
        }


@dataclass
class WandBConfig:
    """Weights & Biases logging; offline by default so a run never waits on the network."""

    project: str = "llmfoundry-lite"
    """W&B project."""
    entity: str | None = None
    """W&B team or user (online mode)."""
    mode: str = "offline"
    """offline (sync later with `wandb sync`), online or disabled."""

    def __post_init__(self) -> None:
        if self.mode not in WANDB_MODES:
            raise ValueError(f"loggers.wandb.mode={self.mode!r}; choose from {sorted(WANDB_MODES)}")


@dataclass
class LoggersConfig:
    """Where metrics go."""

    console_log_interval: str = "10ba"
    """Print metrics to the console this often."""
    file: bool = True
    """Append every metric as a JSON line to <save_folder>/metrics.jsonl."""
    wandb: WandBConfig | None = field(default_factory=WandBConfig)
    """W&B logger; null turns it off."""


@dataclass
class SpeedMonitorConfig:
    """Throughput and MFU (Composer SpeedMonitor + our FLOPs formula)."""

    window_size: int = 10
    """Batches averaged for throughput."""
    peak_flops: float | None = None
    """Peak FLOP/s of one device for MFU; null = Composer's GPU table, or measured matmul FLOP/s on CPU."""


@dataclass
class LossSpikeConfig:
    """Flags steps whose loss jumps above its recent history; records the batch's sample indices."""

    window: int = 50
    """Recent steps forming the baseline."""
    min_history: int = 10
    """Steps needed before any spike is flagged."""
    z_threshold: float = 6.0
    """Spike when loss > mean + z_threshold·std of the window ..."""
    ratio_threshold: float = 1.5
    """... and loss > ratio_threshold·mean (guards against a tiny std)."""


@dataclass
class NumericalHealthConfig:
    """Per-layer gradient statistics every ``interval`` steps (tensor-collection-hook style)."""

    interval: int = 50
    """Collect every N optimizer steps."""
    underflow_warn: float = 0.05
    """Warn when this fraction of (non-embedding) gradient elements is exactly zero."""
    trend_window: int = 5
    """Warn also when the zero fraction rose over this many consecutive collections."""


@dataclass
class CallbacksConfig:
    """Callbacks to attach; null switches one off."""

    speed_monitor: SpeedMonitorConfig | None = field(default_factory=SpeedMonitorConfig)
    lr_monitor: bool = True
    """Log the learning rate every step."""
    memory_monitor: bool = True
    """Log accelerator memory (GPU only; ignored on CPU)."""
    loss_spike: LossSpikeConfig | None = field(default_factory=LossSpikeConfig)
    numerical_health: NumericalHealthConfig | None = field(default_factory=NumericalHealthConfig)
    humaneval: dict[str, Any] | None = None
    """Options of llmfoundry_lite.eval.callback.HumanEvalCallback; null = off."""
