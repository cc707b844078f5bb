"""Typed schema of ``composer train.py yamls/<name>.yaml``.

Each YAML section maps onto one dataclass; an unknown key anywhere fails at load
time naming its dotted path. Only the standard library is imported here, so
validation runs before torch/composer load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.objectives.config import ObjectiveConfig
from llmfoundry_lite.training.sections import (
    CallbacksConfig,
    FaultInjectionConfig,
    FSDPConfig,
    LoggersConfig,
    RollbackConfig,
)

__all__ = ["ModelConfig", "LoaderConfig", "OptimizerConfig", "SchedulerConfig", "TrainConfig", "check_time"]

PRECISIONS = ("auto", "fp32", "amp_bf16", "amp_fp16")
OPTIMIZERS = ("decoupled_adamw", "decoupled_lionw")
SCHEDULERS = ("cosine_with_warmup", "linear_decay_with_warmup", "constant_with_warmup")
_TIME = re.compile(r"^\d+(ba|ep|tok|sp|dur)$")


def check_time(key: str, value: str, units: tuple[str, ...] = ("ba", "ep", "tok", "sp")) -> None:
    """Validate a Composer time string such as ``200ba``, ``1ep`` or ``1000000tok``."""
    m = _TIME.match(value)
    if not m or m.group(1) not in units:
        raise ValueError(f"{key}={value!r} is not a Composer time string; use an integer followed by one of {units}")


DEFAULT_SHARDS = "data/shards"


@dataclass
class StreamConfig:
    """One source of a training mixture: a shard directory and its weight."""

    local: str = ""
    """Directory holding the MDS split folders and manifest.json (one source, or one source's language)."""
    proportion: float | None = None
    """Share of each epoch drawn from this stream (relative; every stream then needs one, and the
    loader's ``epoch_size`` fixes how many samples an epoch holds)."""
    repeat: float | None = None
    """Times each of this stream's samples is drawn per epoch (absolute; 3.0 = upsample ×3, 0.5 =
    half of it). An epoch then holds Σ repeat × stream size samples."""


@dataclass
class LoaderConfig:
    """A StreamingDataset over MDS shards (column ``tokens``: uint16 or int32 ids, length max_seq_len):
    one shard directory (``local``) or a weighted mixture of several (``streams``)."""

    local: str = ""
    """Directory holding the MDS split folders (and manifest.json); ``data/shards`` when neither it nor
    ``streams`` is given."""
    streams: dict[str, StreamConfig] = field(default_factory=dict)
    """Named mixture components instead of ``local`` (streaming's ``Stream``s, in this order). Weights are
    either all ``proportion`` (with ``epoch_size``) or ``repeat``/none; all streams must share the
    tokenizer and sequence length (checked from their manifests)."""
    epoch_size: int | None = None
    """Samples per epoch. Required with proportions: they set the *shares* of an epoch, not its length —
    left to streaming, an epoch would keep the sum of the streams' sizes whatever the proportions (the
    llm-foundry surprise). Not allowed with ``repeat``, which sets the length itself. Without weights it
    draws that many samples in proportion to the streams' sizes."""
    split: str = "train"
    """Split folder under ``local`` (or under every stream's ``local``)."""
    shuffle: bool = True
    """Deterministic (seeded) shuffle of samples."""
    shuffle_seed: int = 17
    """Seed of the shuffle; fixed so a resumed run sees the same order."""
    shuffle_algo: str = ""
    """Streaming's shuffle algorithm; empty = ``py1e`` for one directory (streaming's default, shard-local
    and cheap) and ``py1br`` for streams: py1e keeps a mixture's streams clustered within an epoch (on
    the README's three streams the first 800 samples were 362/221/217 for a 440/153/207 mixture; py1br
    gave 436/147/217), so a run shorter than an epoch would not train on the proportions asked for."""
    num_canonical_nodes: int = 1
    """Streaming's canonical node count; keep it fixed across resumptions so the order is stable."""
    num_workers: int = 0
    """DataLoader worker processes (sample order and objectives do not depend on it)."""
    drop_last: bool = True
    """Drop the last incomplete batch."""

    def __post_init__(self) -> None:
        if self.num_workers < 0 or self.num_canonical_nodes <= 0:
            raise ValueError("loader num_workers must be >= 0 and num_canonical_nodes > 0")
        if self.streams and self.local:
            raise ValueError(f"give local or streams, not both (each stream names its own local); "
                             f"set local: '' to train on the streams instead of {self.local}")
        if not self.streams:
            if self.epoch_size is not None:
                raise ValueError("epoch_size needs streams; a single shard directory's epoch is its size")
            return
        for name, stream in self.streams.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"streams: name {name!r} must use letters, digits, '_', '.' or '-' (it names metrics)")
            if not stream.local:
                raise ValueError(f"streams.{name}.local: name the stream's shard directory")
            if stream.proportion is not None and stream.repeat is not None:
                raise ValueError(f"streams.{name}: give proportion or repeat, not both")
            for key in ("proportion", "repeat"):
                value = getattr(stream, key)
                if value is not None and value <= 0:
                    raise ValueError(f"streams.{name}.{key} must be > 0, got {value}")
        relative = [s.proportion is not None for s in self.streams.values()]
        if any(relative) and not all(relative):
            missing = [n for n, s in self.streams.items() if s.proportion is None]
            raise ValueError(f"streams {missing} have no proportion: with proportions every stream needs one "
                             f"(or weight all of them with repeat)")
        if all(relative) and self.epoch_size is None:
            raise ValueError("streams with proportion need epoch_size (samples per epoch): proportions set the "
                             "shares of an epoch, not its length")
        if any(s.repeat is not None for s in self.streams.values()) and self.epoch_size is not None:
            raise ValueError("epoch_size is set by repeat (Σ repeat × stream size); drop epoch_size or use proportion")
        if self.epoch_size is not None and self.epoch_size <= 0:
            raise ValueError(f"epoch_size must be > 0, got {self.epoch_size}")

    def shuffle_algorithm(self) -> str:
        """The algorithm streaming gets (``shuffle_algo``, or the default for one directory / for streams)."""
        return self.shuffle_algo or ("py1br" if self.streams else "py1e")

    def stream_dirs(self) -> dict[str, str]:
        """Stream name → shard directory (a single ``local`` is the stream ``default``)."""
        if self.streams:
            return {n: s.local for n, s in self.streams.items()}
        return {"default": self.local or DEFAULT_SHARDS}


@dataclass
class OptimizerConfig:
    """Optimizer choice and hyper-parameters."""

    name: str = "decoupled_adamw"
    """One of: decoupled_adamw, decoupled_lionw (Composer's decoupled-weight-decay versions)."""
    lr: float = 6.0e-4
    """Peak learning rate."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """Adam/Lion betas."""
    eps: float = 1.0e-8
    """Adam epsilon (unused by Lion)."""
    weight_decay: float = 0.0
    """Decoupled weight decay."""

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer.name={self.name!r}; choose from {sorted(OPTIMIZERS)}")
        if len(self.betas) != 2:
            raise ValueError(f"optimizer.betas needs two values, got {list(self.betas)}")


@dataclass
class SchedulerConfig:
    """Learning-rate schedule."""

    name: str = "cosine_with_warmup"
    """One of: cosine_with_warmup, linear_decay_with_warmup, constant_with_warmup."""
    t_warmup: str = "100ba"
    """Warmup length as a Composer time string."""
    alpha_f: float = 0.1
    """Final LR as a fraction of the peak."""

    def __post_init__(self) -> None:
        if self.name not in SCHEDULERS:
            raise ValueError(f"scheduler.name={self.name!r}; choose from {sorted(SCHEDULERS)}")
        check_time("scheduler.t_warmup", self.t_warmup)


def split_global_batch(global_batch: int, microbatch: str | None, world_size: int) -> int:
    """The per-process batch of ``global_batch`` over ``world_size`` processes; errors name the divisor."""
    if global_batch % world_size:
        raise ValueError(
            f"global_train_batch_size={global_batch} is not divisible by the "
            f"{world_size} training processes; use a multiple of {world_size}"
        )
    per_device = global_batch // world_size
    check_microbatch(microbatch, per_device)
    return per_device


def check_microbatch(value: str | None, per_device: int) -> None:
    if value is None or value == "auto":
        return
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"device_train_microbatch_size={value!r}; use a positive integer, 'auto' (GPU) or null")
    if per_device % int(value):
        raise ValueError(
            f"device_train_microbatch_size={value} does not divide the per-device batch of {per_device} "
            f"samples; pick a divisor of {per_device}"
        )


@dataclass
class TrainConfig:
    """Everything ``composer train.py`` needs."""

    run_name: str = "code-tiny"
    """Name used for the save folder and loggers."""
    seed: int = 17
    """Global seed (model init, data order)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: str = "data/tokenizer"
    """Directory of the tokenizer (tokenizer.json + manifest.json) the shards were made with."""
    train_loader: LoaderConfig = field(default_factory=LoaderConfig)
    eval_loader: LoaderConfig = field(default_factory=lambda: LoaderConfig(split="val", shuffle=False))
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    """Training objective mixture, applied per sample (evaluation always scores next-token loss)."""
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    global_train_batch_size: int = 8
    """Samples per optimizer step across all devices; must divide by the number of processes."""
    device_train_microbatch_size: str | None = None
    """Samples per forward/backward pass: an integer dividing the per-device batch, 'auto' (GPU, DDP only)
    or null (= whole). The loss is weighted by tokens, so this changes memory and speed, not the objective."""
    device_eval_batch_size: int = 8
    """Evaluation samples per device per forward pass."""
    max_duration: str = "100ba"
    """Training length as a Composer time string (ba, ep, tok, sp)."""
    eval_interval: str = "50ba"
    """How often to evaluate (Composer time string)."""
    eval_subset_num_batches: int = -1
    """Evaluate on at most this many batches (-1 = the whole split)."""
    precision: str = "auto"
    """auto (amp_bf16 on GPU, fp32 on CPU), fp32, amp_bf16 or amp_fp16."""
    grad_clip_norm: float = 1.0
    """Clip the global gradient norm to this (<= 0 disables)."""
    compile: bool = False
    """``torch.compile`` the model (after FSDP/DDP wrapping, through Composer's ``compile_config``):
    fused kernels, FlexAttention's compiled masks; the first steps pay the compile time."""
    fsdp_config: FSDPConfig | None = None
    """Sharded data parallelism (FSDP2, on GPU and CPU); null = DDP. See training/parallel.py."""
    save_folder: str = "runs/${run_name}"
    """Checkpoint directory (also holds config.yaml, metrics.jsonl, loss_spikes.jsonl)."""
    save_interval: str = "50ba"
    """Checkpoint every this much training time."""
    save_num_checkpoints_to_keep: int = -1
    """Keep only the newest N checkpoints (-1 = all)."""
    autoresume: bool = True
    """Resume from the latest checkpoint in save_folder (same command after a crash)."""
    load_path: str | None = None
    """Start from this checkpoint's weights (a ``.pt`` file or a sharded checkpoint's directory): a fresh
    optimizer, schedule and data position, so ``max_duration`` counts new batches. Ignored when autoresume
    finds a checkpoint in save_folder (the run's own, restored whole)."""
    load_training_state: bool = False
    """With ``load_path``: restore the whole training state instead (optimizer, schedule, timestamp, data
    position, RNG), continuing that run; ``max_duration`` then counts from its start."""
    loggers: LoggersConfig = field(default_factory=LoggersConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    rollback: RollbackConfig = field(default_factory=RollbackConfig)
    """Roll back and skip on loss spikes and non-finite losses or gradients (off by default; on in the GPU presets)."""
    fault_injection: FaultInjectionConfig | None = None
    """A drill that poisons one batch's loss (NaN or a spike) to prove ``rollback``; null (default) = off."""
    check_manifest: bool = True
    """Check the shards' manifest.json against the tokenizer and model before training."""
    dist_timeout: float = 300.0
    """Seconds to wait for other processes at barriers."""

    def __post_init__(self) -> None:
        if self.global_train_batch_size <= 0:
            raise ValueError(f"global_train_batch_size must be positive, got {self.global_train_batch_size}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; choose from {', '.join(sorted(PRECISIONS))}")
        if self.fsdp_config is not None:
            self.fsdp_config.check_precision(self.precision)
        if self.device_eval_batch_size <= 0:
            raise ValueError(f"device_eval_batch_size must be positive, got {self.device_eval_batch_size}")
        check_time("max_duration", self.max_duration)
        check_time("eval_interval", self.eval_interval)
        check_time("save_interval", self.save_interval)
        if self.load_training_state and not self.load_path:
            raise ValueError("load_training_state=true restores a checkpoint's training state; give load_path too")
        check_microbatch(self.device_train_microbatch_size, self.global_train_batch_size)
        self._check_rollback()
        if self.device_train_microbatch_size == "auto" and self.fsdp_config is not None:
            # Composer 0.32.1 sizes microbatches automatically only under FSDP1 ("Auto microbatching is
            # not supported outside of FSDP1"); we shard with FSDP2 (FSDP1 hard-codes CUDA devices).
            raise ValueError("device_train_microbatch_size=auto is not supported with fsdp_config (FSDP2) in "
                             "Composer 0.32.1; give an integer (the loss is token-weighted, so the microbatch "
                             "size changes memory, not the objective)")

    def _check_rollback(self) -> None:
        """A checkpoint newer than the newest snapshot would resume, after a crash, on the timeline a
        rollback discarded: checkpoints must fall on snapshot boundaries."""
        rb = self.rollback
        if not rb.enabled or not self.save_interval.endswith("ba"):
            return
        every = int(self.save_interval[:-2])
        if every % rb.snapshot_interval:
            raise ValueError(f"save_interval={self.save_interval} is not a multiple of rollback.snapshot_interval="
                             f"{rb.snapshot_interval}; a checkpoint must never be newer than the snapshot a rollback "
                             f"returns to: use a save_interval that is a multiple of {rb.snapshot_interval}ba")

    def device_batch_size(self, world_size: int) -> int:
        """Per-process batch: the global batch split evenly over ``world_size`` processes."""
        return split_global_batch(self.global_train_batch_size, self.device_train_microbatch_size, world_size)

    def summary(self) -> dict[str, Any]:
        """Numbers printed at the top of a run: parameters and tokens per step."""
        return {
            "params": self.model.num_params(),
            "tokens_per_step": self.global_train_batch_size * self.model.max_seq_len,
        }
