"""Typed schema of ``composer train.py yamls/finetune/<name>.yaml``: a base model, instruction or preference
data, LoRA or not, and the objective (``sft``, or preference tuning with ``dpo`` / ``kto``).

The same entry point as pretraining; a config with a top-level ``base:`` is a fine-tuning run.
The optimizer, scheduler, logger, callback and FSDP sections are pretraining's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmfoundry_lite.finetune.data import FinetuneDataConfig
from llmfoundry_lite.training.config import (
    PRECISIONS,
    OptimizerConfig,
    SchedulerConfig,
    check_microbatch,
    check_time,
    split_global_batch,
)
from llmfoundry_lite.training.sections import CallbacksConfig, FSDPConfig, LoggersConfig

LORA_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
OBJECTIVES = ("sft", "dpo", "kto")
"""sft: the response loss on instruction rows; dpo, kto: preference tuning (``finetune/preference.py``)."""


@dataclass
class LoraConfig:
    """Low-rank adapters (peft) on the named linear layers; everything else is frozen."""

    r: int = 8
    """Rank of each adapter."""
    alpha: float = 16.0
    """Scale: the update is ``alpha / r · B A``."""
    dropout: float = 0.05
    """Dropout on the adapter's input."""
    target_modules: list[str] = field(default_factory=lambda: ["qkv_proj", "o_proj"])
    """Linear layers of every block that get adapters: any of qkv_proj (fused q, k, v), o_proj,
    gate_up_proj (fused SwiGLU gate and up), down_proj."""

    def __post_init__(self) -> None:
        if self.r <= 0 or self.alpha <= 0:
            raise ValueError(f"lora.r and lora.alpha must be positive, got r={self.r}, alpha={self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must lie in [0, 1), got {self.dropout}")
        unknown = sorted(set(self.target_modules) - set(LORA_TARGETS))
        if unknown or not self.target_modules:
            raise ValueError(f"lora.target_modules: unknown {unknown}; choose from {list(LORA_TARGETS)}")


@dataclass
class PreferenceConfig:
    """DPO / KTO settings (``objective: dpo`` or ``kto``; ``finetune/preference.py`` has the losses)."""

    beta: float = 0.1
    """How far the policy may move from the reference: the log-ratios are scaled by beta (both papers' β)."""
    desirable_weight: float = 1.0
    """KTO's λ_D, the weight of a desirable completion's loss."""
    undesirable_weight: float = 1.0
    """KTO's λ_U; the paper advises λ_D·n_D / (λ_U·n_U) in [1, 4/3] (n: completions of each kind)."""
    reference_cache: str | None = None
    """A directory for the reference model's log-probs (one file per data + base hash), so a rerun or
    resume skips the reference pass; null keeps them in memory only."""

    def __post_init__(self) -> None:
        for key in ("beta", "desirable_weight", "undesirable_weight"):
            if not getattr(self, key) > 0:
                raise ValueError(f"preference.{key} must be positive, got {getattr(self, key)}")


@dataclass
class FinetuneConfig:
    """Everything a fine-tuning run needs (``composer train.py yamls/finetune/<name>.yaml``)."""

    base: str = ""
    """Where the weights start: a Composer checkpoint (``.pt`` or sharded directory) or save folder of
    ours, or a local Hugging Face directory of a Llama-architecture model (config + safetensors +
    tokenizer), e.g. one written by ``scripts/export_hf.py``."""
    run_name: str = "finetune"
    """Name used for the save folder and loggers."""
    seed: int = 17
    """Global seed (adapter init, data order)."""
    train_loader: FinetuneDataConfig = field(default_factory=lambda: FinetuneDataConfig(data="?"))
    """Training examples (prompt/response or chat rows), masking, truncation and packing."""
    eval_loader: FinetuneDataConfig | None = None
    """Held-out examples: the response loss is measured before training (step 0) and at every eval."""
    lora: LoraConfig | None = None
    """LoRA adapters; null = full fine-tuning of every weight."""
    objective: str = "sft"
    """sft (instruction rows, response loss), dpo (paired preference rows) or kto (unpaired or paired rows);
    preference rows are completion-style (``finetune/preference_data.py``)."""
    preference: PreferenceConfig = field(default_factory=PreferenceConfig)
    """beta, KTO's weights and the reference cache, for objective dpo and kto."""
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=2.0e-4))
    scheduler: SchedulerConfig = field(default_factory=lambda: SchedulerConfig(t_warmup="10ba"))
    global_train_batch_size: int = 8
    """Packed rows per optimizer step across all devices."""
    device_train_microbatch_size: str | None = None
    """Rows per forward/backward pass (a divisor of the per-device batch) or null (= whole)."""
    device_eval_batch_size: int = 8
    """Evaluation rows per device per forward pass."""
    max_duration: str = "2ep"
    """Training length (Composer time string)."""
    eval_interval: str = "1ep"
    """How often to measure the held-out response loss."""
    eval_subset_num_batches: int = -1
    """Evaluate on at most this many batches (-1 = all)."""
    precision: str = "auto"
    """auto (amp_bf16 on GPU, fp32 on CPU), fp32, amp_bf16 or amp_fp16."""
    grad_clip_norm: float = 1.0
    """Clip the global gradient norm to this (<= 0 disables)."""
    fsdp_config: FSDPConfig | None = None
    """Sharded data parallelism (FSDP2); null = DDP."""
    save_folder: str = "runs/${run_name}"
    """Checkpoints (adapter weights only with LoRA), config.yaml, metrics.jsonl, train_summary.json."""
    save_interval: str = "1ep"
    """Checkpoint every this much training time."""
    save_num_checkpoints_to_keep: int = -1
    """Keep only the newest N checkpoints (-1 = all)."""
    autoresume: bool = True
    """Resume from the latest checkpoint in save_folder (same command after a crash)."""
    loggers: LoggersConfig = field(default_factory=LoggersConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    dist_timeout: float = 300.0
    """Seconds to wait for other processes at barriers."""

    def __post_init__(self) -> None:
        if not self.base:
            raise ValueError("base: name the checkpoint, save folder or HF directory to start from")
        if self.train_loader.data == "?":
            raise ValueError("train_loader.data: name the JSONL/Parquet file or directory to train on")
        if self.global_train_batch_size <= 0 or self.device_eval_batch_size <= 0:
            raise ValueError("global_train_batch_size and device_eval_batch_size must be positive")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; choose from {', '.join(sorted(PRECISIONS))}")
        if self.fsdp_config is not None:
            self.fsdp_config.check_precision(self.precision)
        for key in ("max_duration", "eval_interval", "save_interval"):
            check_time(key, getattr(self, key))
        check_microbatch(self.device_train_microbatch_size, self.global_train_batch_size)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose from {list(OBJECTIVES)}")
        if self.objective != "sft":
            # Each continuation is scored as one sequence: packing and the response targets do not apply.
            needed = (("packing", "false"), ("target_prompts", "false"), ("target_responses", "all"))
            wrong = [f"{name}.{key}: {value}" for name in ("train_loader", "eval_loader") for key, value in needed
                     if getattr(self, name) is not None and str(getattr(getattr(self, name), key)).lower() != value]
            if wrong:
                raise ValueError(f"objective {self.objective} scores each continuation as one sequence; "
                                 f"set {', '.join(wrong)}")

    def device_batch_size(self, world_size: int) -> int:
        """Per-process batch: the global batch split evenly over ``world_size`` processes."""
        return split_global_batch(self.global_train_batch_size, self.device_train_microbatch_size, world_size)
