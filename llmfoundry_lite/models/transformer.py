"""A LLaMA-style decoder: RoPE, RMSNorm, SwiGLU, no biases, optional GQA and tied embeddings.

Shape legend used in names and comments: B batch, T query length, S key length (cache
included), C d_model, H query heads, K key/value heads, D head dim, E = D/2,
V vocab, F ffn size, J = H + K, X = (H + 2K)·D.
Attention goes through ``models.attention``: SDPA's causal flash path when no mask is
needed; when documents (segment ids) or a UL2 prefix need one, a dense mask for SDPA or a
FlexAttention block mask (``model.attn_impl``), built once per forward for all layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from llmfoundry_lite.models.attention import Mask, attend, build_mask
from llmfoundry_lite.models.config import ModelConfig


def rope_tables(head_dim: int, length: int, theta: float, device: torch.device | None = None) -> torch.Tensor:
    """cos and sin for positions 0..length-1 and frequencies 0..D/2-1, stacked: (2, length, D/2)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float32, device=device), inv_freq)  # (T, D/2)
    return torch.stack([angles.cos(), angles.sin()])


def apply_rope(x_BTND: torch.Tensor, cos_TE: torch.Tensor, sin_TE: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[i], x[i + D/2]) by position·freq[i] (HF Llama's "halves" layout; E = D/2).

    ``x_BTND`` is (B, T, heads, D); q and k go through together in one call. The tables are (T, E)
    when every row has the same positions, or (B, T, E) when each row has its own.
    """
    x1, x2 = x_BTND.chunk(2, dim=-1)
    cos, sin = cos_TE.unsqueeze(-2), sin_TE.unsqueeze(-2)  # broadcast over heads
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x_BTND.dtype)


class KVCache:
    """Preallocated keys/values of every layer for incremental decoding."""

    def __init__(self, cfg: ModelConfig, batch: int, length: int, device: torch.device, dtype: torch.dtype) -> None:
        shape = (cfg.n_layers, batch, cfg.kv_heads, length, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.pos = 0  # tokens already stored

    def update(self, layer: int, k_BKTD: torch.Tensor, v_BKTD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.pos + k_BKTD.shape[2]
        self.k[layer, :, :, self.pos:end] = k_BKTD
        self.v[layer, :, :, self.pos:end] = v_BKTD
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        # q, k and v in one matmul (rows: H·D query, K·D key, K·D value): fewer, larger kernels.
        self.split = [cfg.n_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim]
        self.qkv_proj = nn.Linear(cfg.d_model, sum(self.split), bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=False)

    def qkv(self, x_BTC: torch.Tensor, cos_TE: torch.Tensor,
            sin_TE: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rotated queries (B, H, T, D), rotated keys and values (B, K, T, D). The RoPE tables are (T, E)
        or, for a cache whose rows differ in length (serving), (B, T, E): see ``apply_rope``."""
        B, T, _ = x_BTC.shape
        H, K, D = self.n_heads, self.n_kv, self.head_dim
        qkv_BTX = self.qkv_proj(x_BTC)  # X = (H + 2K)·D
        qk_BTJD = apply_rope(qkv_BTX[..., : (H + K) * D].view(B, T, H + K, D), cos_TE, sin_TE)
        v_BKTD = qkv_BTX[..., (H + K) * D :].view(B, T, K, D).transpose(1, 2)
        return qk_BTJD[:, :, :H].transpose(1, 2), qk_BTJD[:, :, H:].transpose(1, 2), v_BKTD

    def out(self, y_BHTD: torch.Tensor) -> torch.Tensor:
        """The attention result (B, H, T, D) projected back to the residual stream (B, T, C)."""
        B, _, T, _ = y_BHTD.shape
        return self.o_proj(y_BHTD.transpose(1, 2).reshape(B, T, -1))

    def forward(self, x_BTC: torch.Tensor, rope_2TE: torch.Tensor, mask: Mask,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        T = x_BTC.shape[1]
        q_BHTD, k_BKTD, v_BKTD = self.qkv(x_BTC, rope_2TE[0], rope_2TE[1])
        causal = mask is None
        if cache is not None:
            # Cached keys all lie in the past. SDPA's is_causal aligns the mask to the top-left
            # corner, which is wrong once S > T, so chunks after the first get an explicit mask.
            k_BKSD, v_BKSD = cache.update(layer, k_BKTD, v_BKTD)
            if cache.pos > 0 and T > 1:
                S = k_BKSD.shape[2]
                pos_q = torch.arange(cache.pos, cache.pos + T, device=x_BTC.device)
                mask = torch.arange(S, device=x_BTC.device)[None, :] <= pos_q[:, None]  # (T, S)
                causal = False
            elif T == 1:
                causal = False
            k_BKTD, v_BKTD = k_BKSD, v_BKSD
        return self.out(attend(q_BHTD, k_BKTD, v_BKTD, mask, causal))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        # gate and up projections in one matmul (rows: F gate, then F up).
        self.gate_up_proj = nn.Linear(cfg.d_model, 2 * cfg.ffn_dim, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def forward(self, x_BTC: torch.Tensor) -> torch.Tensor:
        gate_BTF, up_BTF = self.gate_up_proj(x_BTC).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate_BTF) * up_BTF)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x_BTC: torch.Tensor, rope_2TE: torch.Tensor, mask: Mask,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        return self._mlp_residual(x_BTC + self.attn(self.attn_norm(x_BTC), rope_2TE, mask, cache, layer))

    def _mlp_residual(self, x_BTC: torch.Tensor) -> torch.Tensor:
        return x_BTC + self.mlp(self.mlp_norm(x_BTC))

    # A cache that is not ``KVCache`` (the serving engine's slots) computes the block in two halves
    # around its own attention call: qkv() before, finish() after. forward() is the same two halves.
    def qkv(self, x_BTC: torch.Tensor, cos_TE: torch.Tensor,
            sin_TE: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attention inputs (q, k, v) of this block for the residual stream ``x_BTC``: ``Attention.qkv``."""
        return self.attn.qkv(self.attn_norm(x_BTC), cos_TE, sin_TE)

    def finish(self, x_BTC: torch.Tensor, y_BHTD: torch.Tensor) -> torch.Tensor:
        """The block's output from its residual input and its attention result (B, H, T, D)."""
        return self._mlp_residual(x_BTC + self.attn.out(y_BHTD))


class Transformer(nn.Module):
    """Token ids (B, T) → logits (B, T, V)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.register_buffer("rope", rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, init_std) everywhere; residual output projections shrink by sqrt(2·n_layers)
        so the residual stream's variance does not grow with depth (GPT-2 / MPT scheme)."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)  # RMSNorm gains
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, std=std / math.sqrt(2 * self.cfg.n_layers))
            else:
                nn.init.normal_(p, std=std)
        if self.rope.device.type != "meta":
            self.rope = rope_tables(self.cfg.head_dim, self.cfg.max_seq_len, self.cfg.rope_theta, self.rope.device)

    def rope_at(self, pos_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin (B, T, E) at each row's own positions (< ``max_seq_len``), for ``Block.qkv``."""
        return self.rope[0][pos_BT], self.rope[1][pos_BT]

    def logits(self, x_BTC: torch.Tensor) -> torch.Tensor:
        """The residual stream after the last block → logits (..., V)."""
        return self.lm_head(self.norm(x_BTC))

    def _rope_for(self, start: int, length: int) -> torch.Tensor:
        end = start + length
        if end > self.rope.shape[1]:  # generation past the trained length: extend the table
            with torch.inference_mode(False):  # a normal tensor, usable by later training steps
                self.rope = rope_tables(self.cfg.head_dim, 2 * end, self.cfg.rope_theta, self.rope.device)
        return self.rope[:, start:end]

    def forward(self, input_ids_BT: torch.Tensor, segment_ids_BT: torch.Tensor | None = None,
                prefix_len_B: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """Logits (B, T, V) for ``input_ids_BT``.

        ``segment_ids_BT`` (B, T): document of each token (0 = padding), as the objectives emit
        it; used only with ``cfg.doc_mask``, where a token sees only its own segment. With
        ``doc_mask`` and no segment ids the row is one document (plain causal): the model never
        guesses documents from EOS tokens (use ``attention.segments_from_eos`` on raw packed rows).
        ``prefix_len_B`` (B,): UL2 prefix-LM, the first ``prefix_len`` positions see each other.
        ``cache``: incremental decoding, causal only.
        """
        B, T = input_ids_BT.shape
        if cache is not None and (segment_ids_BT is not None or prefix_len_B is not None):
            raise ValueError("segment_ids_BT and prefix_len_B are for full-sequence forwards, not with a KV cache")
        if segment_ids_BT is not None and segment_ids_BT.shape != input_ids_BT.shape:
            raise ValueError(f"segment_ids_BT has shape {tuple(segment_ids_BT.shape)}, input_ids_BT {(B, T)}")
        start = 0 if cache is None else cache.pos
        rope_2TE = self._rope_for(start, T)
        mask = build_mask(self.cfg.attn_impl, self.cfg.doc_mask, segment_ids_BT, prefix_len_B, B, T,
                          input_ids_BT.device)
        x_BTC = self.embed(input_ids_BT)
        for i, block in enumerate(self.blocks):
            x_BTC = block(x_BTC, rope_2TE, mask, cache, i)
        if cache is not None:
            cache.pos += T
        return self.logits(x_BTC)  # (B, T, V)
