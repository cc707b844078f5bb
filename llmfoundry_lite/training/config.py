"""Typed schema of ``composer train.py yamls/<name>.yaml``.

Each YAML section maps onto one dataclass; an unknown key anywhere fails at load
time naming its dotted path. Only the standard library is imported here, so
validation runs before torch/composer load.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    """Decoder-only, LLaMA-style transformer shape."""

    d_model: int = 256
    """Hidden size."""
    n_layers: int = 4
    """Number of transformer blocks."""
    n_heads: int = 4
    """Attention query heads; d_model must be divisible by it."""
    n_kv_heads: int | None = None
    """Key/value heads for grouped-query attention; None means n_heads (plain MHA)."""
    vocab_size: int = 32768
    """Embedding rows; must match the tokenizer's vocabulary."""
    max_seq_len: int = 512
    """Longest context the model is trained on."""
    ffn_hidden_size: int | None = None
    """SwiGLU hidden size; None means 8/3·d_model rounded up to a multiple of 64."""
    rope_theta: float = 10000.0
    """RoPE base frequency."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    tie_embeddings: bool = False
    """Share input embedding and output projection weights."""
    doc_mask: bool = False
    """Mask attention across end-of-text boundaries inside packed contexts."""
    init_std: float = 0.02
    """Std of the normal init; residual output projections get init_std / sqrt(2·n_layers)."""

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}")
        kv = self.n_kv_heads or self.n_heads
        if self.n_heads % kv:
            raise ValueError(f"model.n_heads={self.n_heads} is not divisible by model.n_kv_heads={kv}")
        for key in ("d_model", "n_layers", "n_heads", "vocab_size", "max_seq_len"):
            if getattr(self, key) <= 0:
                raise ValueError(f"model.{key} must be positive, got {getattr(self, key)}")


@dataclass
class LoaderConfig:
    """A StreamingDataset over MDS shards."""

    local: str = "data/shards"
    """Directory holding the MDS split folders."""
    split: str = "train"
    """Split folder under ``local``."""
    shuffle: bool = True
    """Deterministic (seeded) shuffle of samples."""
    shuffle_seed: int = 17
    """Seed of the shuffle; fixed so a resumed run sees the same order."""
    num_workers: int = 0
    """DataLoader worker processes."""
    drop_last: bool = True
    """Drop the last incomplete batch."""


@dataclass
class OptimizerConfig:
    """Optimizer choice and hyper-parameters."""

    name: str = "decoupled_adamw"
    """One of: decoupled_adamw, decoupled_lionw."""
    lr: float = 6.0e-4
    """Peak learning rate."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """Adam/Lion betas."""
    eps: float = 1.0e-8
    """Adam epsilon."""
    weight_decay: float = 0.0
    """Decoupled weight decay."""


@dataclass
class SchedulerConfig:
    """Learning-rate schedule."""

    name: str = "cosine_with_warmup"
    """One of: cosine_with_warmup, linear_decay_with_warmup, constant_with_warmup."""
    t_warmup: str = "100ba"
    """Warmup length as a Composer time string."""
    alpha_f: float = 0.1
    """Final LR as a fraction of the peak."""


@dataclass
class TrainConfig:
    """Everything ``composer train.py`` needs."""

    run_name: str = "code-tiny"
    """Name used for the save folder and loggers."""
    seed: int = 17
    """Global seed (model init, data order)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: str = "data/tokenizer"
    """Directory of the tokenizer.json to train with."""
    train_loader: LoaderConfig = field(default_factory=LoaderConfig)
    eval_loader: LoaderConfig = field(default_factory=lambda: LoaderConfig(split="val", shuffle=False))
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    global_train_batch_size: int = 8
    """Samples per optimizer step across all devices."""
    device_train_microbatch_size: int | None = None
    """Samples per forward/backward pass; None means the whole per-device batch."""
    max_duration: str = "100ba"
    """Training length as a Composer time string (ba, ep, tok)."""
    eval_interval: str = "50ba"
    """How often to evaluate."""
    precision: str = "fp32"
    """fp32, amp_bf16 or amp_fp16."""
    grad_clip_norm: float = 1.0
    """Clip the global gradient norm to this (<= 0 disables)."""
    save_folder: str = "runs/${run_name}"
    """Checkpoint directory."""
    save_interval: str = "50ba"
    """Checkpoint every this much training time."""
    autoresume: bool = True
    """Resume from the latest checkpoint in save_folder."""

    def __post_init__(self) -> None:
        if self.global_train_batch_size <= 0:
            raise ValueError(f"global_train_batch_size must be positive, got {self.global_train_batch_size}")
        if self.precision not in ("fp32", "amp_bf16", "amp_fp16"):
            raise ValueError(f"precision={self.precision!r}; choose from amp_bf16, amp_fp16, fp32")
