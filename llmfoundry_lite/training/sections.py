"""Typed ``fsdp_config:``, ``loggers:`` and ``callbacks:`` sections (standard library only)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SHARDING = ("FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD")
MIXED_PRECISION = ("DEFAULT", "PURE", "FULL")
REDUCE_DTYPES = ("fp32", "bf16")
STATE_DICT_TYPES = ("full", "sharded")
WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class FSDPConfig:
    """Sharded data parallelism with torch's FSDP2 (see ``training/parallel.py``); null = DDP."""

    sharding_strategy: str = "FULL_SHARD"
    """FULL_SHARD, SHARD_GRAD_OP (keep parameters gathered between forward and backward),
    HYBRID_SHARD (shard inside a group, replicate across groups) or NO_SHARD (replicate only)."""
    data_parallel_replicate_degree: int | None = None
    """HYBRID_SHARD only: number of replica groups (the 2-D mesh is replicate x world/replicate);
    null = one group per node."""
    mixed_precision: str = "DEFAULT"
    """Dtype FSDP gathers the parameters in for forward and backward: DEFAULT or PURE = the run's
    ``precision`` (bf16 under amp_bf16; halves all-gather traffic and memory), FULL = fp32. The
    gradient reduction dtype is ``reduce_dtype`` alone (Composer's PURE also reduced in bf16; here
    PURE with the default ``reduce_dtype: fp32`` is DEFAULT)."""
    reduce_dtype: str = "fp32"
    """Dtype of the gradient reduction: FSDP2's reduce-scatter and, under HYBRID_SHARD, the all-reduce
    across replica groups; it runs once per microbatch. fp32 (default): every rank's contribution is
    summed and averaged in fp32, so a sum over hundreds of ranks and microbatches keeps 24 mantissa bits.
    bf16: half the reduction traffic, but each microbatch's gradient is rounded to 8 mantissa bits
    before it is summed (small gradients vanish beside large ones). bf16 means the run's low precision:
    it needs ``precision: amp_bf16`` unless ``mixed_precision`` is FULL (an fp32 run reduces in fp32)."""
    activation_checkpointing: bool = False
    """Recompute each block's activations in backward (saves memory, costs ~1/3 more compute)."""
    activation_cpu_offload: bool = False
    """Offload checkpointed activations to CPU."""
    state_dict_type: str = "full"
    """Checkpoint layout: full (one .pt gathered on rank 0) or sharded (a distributed-checkpoint
    directory, one file per rank, no gather: the choice at scale). Both export to HF."""

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("sharding_strategy", self.sharding_strategy, SHARDING),
            ("mixed_precision", self.mixed_precision, MIXED_PRECISION),
            ("reduce_dtype", self.reduce_dtype, REDUCE_DTYPES),
            ("state_dict_type", self.state_dict_type, STATE_DICT_TYPES),
        ):
            if value not in allowed:
                raise ValueError(f"fsdp_config.{key}={value!r}; choose from {sorted(allowed)}")
        degree = self.data_parallel_replicate_degree
        if degree is not None and degree <= 0:
            raise ValueError(f"fsdp_config.data_parallel_replicate_degree must be positive or null, got {degree}")

    def check_precision(self, precision: str) -> None:
        """``reduce_dtype: bf16`` reduces in the run's low precision, so it needs one (bf16): refuse fp32 or
        fp16 runs, which would silently reduce in fp32 or fp16 instead."""
        if self.reduce_dtype == "bf16" and self.mixed_precision != "FULL" and precision not in ("auto", "amp_bf16"):
            raise ValueError(f"fsdp_config.reduce_dtype=bf16 reduces in the run's precision, but precision={precision}; "
                             f"use precision=amp_bf16, fsdp_config.mixed_precision=FULL, or reduce_dtype=fp32")

    def composer_mixed_precision(self) -> str | dict[str, str]:
        """The ``mixed_precision`` value Composer's FSDP2 turns into fully_shard's MixedPrecisionPolicy
        (``composer/distributed/mosaic_parallelism.get_mixed_precision``): parameters as
        ``mixed_precision`` says, the reduction in ``reduce_dtype``. Composer's DEFAULT is (run
        precision, fp32) and PURE (run precision, run precision); a dict sets only what it names, so
        FULL (no cast) keeps fp32 parameters and states the reduction."""
        if self.mixed_precision == "FULL":
            return {"reduce_dtype": self.reduce_dtype}
        return "DEFAULT" if self.reduce_dtype == "fp32" else "PURE"


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
class MLflowConfig:
    """MLflow tracking (Databricks teams): Composer's ``MLFlowLogger``, a local file store by default."""

    tracking_uri: str = ""
    """Where runs are tracked: empty = ``file:<save_folder>/mlruns`` (offline); or ``databricks``,
    ``http://host:5000``, ``sqlite:///mlflow.db`` …"""
    experiment_name: str = "llmfoundry-lite"
    """MLflow experiment the run is filed under."""


@dataclass
class LoggersConfig:
    """Where metrics go."""

    console_log_interval: str = "10ba"
    """Print one compact line (step, loss, lr, tokens/s, MFU, ETA) every this many batches (``<N>ba``)."""
    file: bool = True
    """Append every metric as a JSON line to <save_folder>/metrics.jsonl."""
    wandb: WandBConfig | None = field(default_factory=WandBConfig)
    """W&B logger; null turns it off."""
    mlflow: MLflowConfig | None = None
    """MLflow logger (params, metrics, the resolved config); null (default) turns it off."""

    def __post_init__(self) -> None:
        self.console_interval_batches()

    def console_interval_batches(self) -> int:
        """``console_log_interval`` as a number of batches."""
        m = re.fullmatch(r"(\d+)ba", self.console_log_interval)
        if not m or int(m.group(1)) <= 0:
            raise ValueError(f"loggers.console_log_interval={self.console_log_interval!r}; use a positive "
                             "number of batches such as 10ba")
        return int(m.group(1))


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
    skip_warn: float = 0.05
    """amp_fp16 only: warn when more than this share of the last ``skip_window`` steps were skipped
    by the grad scaler for overflow (the start's calibration skips are counted but not judged)."""
    skip_window: int = 100
    """amp_fp16 only: steps over which skipped steps are judged."""

    def __post_init__(self) -> None:
        if not 0 <= self.skip_warn < 1 or self.skip_window < 1:
            raise ValueError(f"callbacks.numerical_health: skip_warn={self.skip_warn} must be in [0, 1) and "
                             f"skip_window={self.skip_window} >= 1")


@dataclass
class ActivationHealthConfig:
    """Per-block max |activation| (residual stream, attention logits, MLP output) and the share of values
    beyond fp16 / near bf16's limit, sampled every ``interval`` steps (``callbacks/activation_health.py``)."""

    interval: int = 50
    """Collect on step 1 and every N optimizer steps; other steps run no hook."""
    fp16_margin: float = 0.5
    """Warn when a block's absmax exceeds this fraction of fp16's max (65504)."""
    growth_factor: float = 8.0
    """Warn when a block's absmax exceeds this multiple of the median of its last ``history`` readings."""
    history: int = 10
    """Readings per quantity kept for the growth rule (it needs at least min(3, history) of them)."""

    def __post_init__(self) -> None:
        for key in ("interval", "fp16_margin", "growth_factor", "history"):
            if getattr(self, key) <= 0:
                raise ValueError(f"callbacks.activation_health.{key} must be positive, got {getattr(self, key)}")


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
    activation_health: ActivationHealthConfig | None = field(default_factory=ActivationHealthConfig)
    humaneval: dict[str, Any] | None = None
    """Options of llmfoundry_lite.eval.callback.HumanEvalCallback; null = off."""


SNAPSHOT_DEVICES = ("cpu", "device")


@dataclass
class RollbackConfig:
    """Roll back and skip on a loss spike or a non-finite loss/gradient (``callbacks/rollback.py``).

    Every ``snapshot_interval`` batches the model's parameters and the optimizer's state are copied
    (``snapshot_device``): per rank, the bytes of its parameters (its shard under FSDP) plus its optimizer
    state — 3× the parameter bytes for AdamW, 2× for Lion (the run prints the figure at its first batch).
    When the guard fires (checked after backward, before the optimizer step, agreed by all ranks) the
    trigger's step is not applied, the snapshot is restored, and the batches since it are skipped: the
    data position moves on past them and they are written to ``loss_spikes.jsonl``. The clock is not
    rewound: Composer computes the learning rate from it, and skipped batches count as spent."""

    enabled: bool = False
    """Turn the guard on (on in the GPU presets). With it on, it records spikes itself: the separate
    ``callbacks.loss_spike`` recorder is not attached, its thresholds (window, z, ratio) are the guard's."""
    max_rollbacks: int = 5
    """Rollbacks allowed in the run; the next event stops it with a report (0 = stop at the first event)."""
    snapshot_interval: int = 50
    """Batches between snapshots: the most batches one rollback skips. ``save_interval`` (in batches) must be
    a multiple, so no checkpoint is ever newer than the snapshot a rollback returns to."""
    snapshot_device: str = "cpu"
    """Where snapshots live: cpu (host memory, pinned on GPU machines; no accelerator memory) or device
    (fastest copy, costs accelerator memory)."""
    lr_scale: float = 1.0
    """Multiply the learning rate by this for ``lr_scale_batches`` batches after a rollback (1.0 = off)."""
    lr_scale_batches: int = 0
    """How many batches the lowered learning rate lasts."""
    save_restored: bool = True
    """Write the restored weights to ``<save_folder>/rollbacks/rollback-<n>-ba<step>.pt`` so
    ``scripts/replay_spike.py`` can score the skipped samples with exactly those weights."""

    def __post_init__(self) -> None:
        if self.max_rollbacks < 0 or self.snapshot_interval <= 0 or self.lr_scale_batches < 0:
            raise ValueError("rollback.max_rollbacks and rollback.lr_scale_batches must be >= 0 and "
                             "rollback.snapshot_interval > 0")
        if self.snapshot_device not in SNAPSHOT_DEVICES:
            raise ValueError(f"rollback.snapshot_device={self.snapshot_device!r}; choose from {sorted(SNAPSHOT_DEVICES)}")
        if not 0 < self.lr_scale <= 1:
            raise ValueError(f"rollback.lr_scale={self.lr_scale} must be in (0, 1] (it lowers the learning rate)")


@dataclass
class FaultInjectionConfig:
    """A drill, off by default: poison the samples of one batch (by its 0-based index in the run) to prove
    the rollback guard on any machine (``callbacks/fault_injection.py``). Never set it in a real run."""

    nan_at_batch: int | None = None
    """Batch whose samples get a NaN loss."""
    spike_at_batch: int | None = None
    """Batch whose samples' loss is multiplied by ``spike_scale``."""
    spike_scale: float = 100.0
    """Factor of the spike."""

    def __post_init__(self) -> None:
        for key in ("nan_at_batch", "spike_at_batch"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ValueError(f"fault_injection.{key} must be >= 0, got {value}")
        if self.nan_at_batch is not None and self.nan_at_batch == self.spike_at_batch:
            raise ValueError("fault_injection: nan_at_batch and spike_at_batch name the same batch; pick two")
        if self.spike_scale <= 1:
            raise ValueError(f"fault_injection.spike_scale must be > 1, got {self.spike_scale}")
