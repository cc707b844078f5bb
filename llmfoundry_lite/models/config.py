"""Typed ``model:`` section: the shape of the decoder (standard library only).

Kept free of torch so that ``train.py`` can validate a config before heavy imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmfoundry_lite.validate import require_positive

ATTN_IMPLS = ("auto", "sdpa", "flex")
"""Valid ``attn_impl`` values (``models.attention`` dispatches on them)."""


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
    """Keep attention inside each document of a packed context, as given by the batch's
    ``segment_ids`` (emitted by the objectives); a forward without segment ids is one document."""
    attn_impl: str = "auto"
    """Attention kernel when a mask is needed (documents or UL2 prefix): ``sdpa`` (dense boolean
    mask; GPUs fall back from flash to the efficient kernel), ``flex`` (FlexAttention block mask,
    compiled on CUDA, eager reference on CPU), ``auto`` (flex on CUDA, sdpa elsewhere). Unmasked
    causal attention always takes SDPA's flash path."""
    eos_id: int = 0
    """Token id that ends a document (exported as the HF eos/bos id; the model itself never reads it)."""
    init_std: float = 0.02
    """Std of the normal init; residual output projections get init_std / sqrt(2·n_layers)."""

    def __post_init__(self) -> None:
        require_positive(self, ("d_model", "n_layers", "n_heads", "vocab_size", "max_seq_len"), "model.")
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}")
        kv = self.n_kv_heads or self.n_heads
        if kv <= 0 or self.n_heads % kv:
            raise ValueError(f"model.n_heads={self.n_heads} is not divisible by model.n_kv_heads={kv}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(f"model.d_model / model.n_heads = {self.d_model // self.n_heads} must be even for RoPE")
        if self.attn_impl not in ATTN_IMPLS:
            raise ValueError(f"unknown model.attn_impl {self.attn_impl!r}; choose from {sorted(ATTN_IMPLS)}")
        if self.ffn_hidden_size is not None and self.ffn_hidden_size <= 0:
            raise ValueError(f"model.ffn_hidden_size must be positive or null, got {self.ffn_hidden_size}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def ffn_dim(self) -> int:
        if self.ffn_hidden_size is not None:
            return self.ffn_hidden_size
        return 64 * math.ceil(8 * self.d_model / 3 / 64)

    def num_params(self) -> int:
        """Exact parameter count, computed from the shape (matches the built module)."""
        d, hd = self.d_model, self.head_dim
        attn = d * self.n_heads * hd + 2 * d * self.kv_heads * hd + self.n_heads * hd * d
        mlp = 3 * d * self.ffn_dim
        block = attn + mlp + 2 * d  # two RMSNorm weights
        embed = self.vocab_size * d
        head = 0 if self.tie_embeddings else self.vocab_size * d
        return embed + self.n_layers * block + d + head

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token: 6·N_matmul + 12·n_layers·d_model·seq_len.

        ``N_matmul`` counts every weight used in a matmul (all projections plus the output
        head, even when tied; the embedding lookup is not a matmul). The second term is the
        attention score and value products (2·2·T·d per layer forward, ×3 for backward),
        without halving for the causal mask — the convention of PaLM and llm-foundry's MFU.
        """
        t = self.max_seq_len if seq_len is None else seq_len
        d = self.d_model
        n_matmul = self.num_params() - self.vocab_size * d - self.n_layers * 2 * d - d
        if self.tie_embeddings:
            n_matmul += self.vocab_size * d
        return 6.0 * n_matmul + 12.0 * self.n_layers * d * t
