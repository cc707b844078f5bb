"""A KV cache with one slot per running sequence, and the forward passes that fill and read it.

Shape legend as in ``models.transformer``: B rows, T query length, S key length, C d_model,
H query heads, K key/value heads, D head dim, E = D/2, V vocab, X = (H + 2K)·D, L layers.

``KVCache`` in the model shares one position across the batch, so every row must have the same
length. Here each slot keeps its own length: prompts of different lengths are prefilled
right-padded (plain causal attention is then exact for the real tokens, padding only follows
them), and a decode step gives every row its own RoPE position and a mask over its own keys.
RoPE makes attention depend on relative positions only, but absolute positions are kept
anyway, so each row computes what an unbatched forward computes. The model does the math
(``Transformer.rope_at``, ``Block.qkv`` before attention and ``Block.finish`` after it, the same
halves its own forward runs, and ``Transformer.logits``); this file only routes rows to slots and
calls ``attend``. ``tests/serve/test_engine_parts.py`` holds it equal to ``Transformer.forward``.
"""

from __future__ import annotations

import torch

from llmfoundry_lite.models.attention import attend
from llmfoundry_lite.models.transformer import Transformer


class SlotCache:
    """Keys and values (L, slots, K, S, D) plus the number of tokens each slot holds."""

    def __init__(self, model: Transformer, slots: int) -> None:
        cfg = model.cfg
        param = next(model.parameters())
        shape = (cfg.n_layers, slots, cfg.kv_heads, cfg.max_seq_len, cfg.head_dim)
        self.k = torch.zeros(shape, device=param.device, dtype=param.dtype)
        self.v = torch.zeros(shape, device=param.device, dtype=param.dtype)
        self.lengths = [0] * slots

    @property
    def slots(self) -> int:
        return len(self.lengths)


@torch.inference_mode()
def prefill(model: Transformer, cache: SlotCache, prompts: list[list[int]], slots: list[int], *,
            every_position: bool = False) -> torch.Tensor:
    """Run each prompt into its slot; logits (B, V) after each prompt's last token, or with
    ``every_position`` (B, T, V) after every token (rows past a prompt's end are padding): what
    scoring an echoed prompt needs."""
    device = cache.k.device
    lengths = [len(p) for p in prompts]
    T = max(lengths)
    ids_BT = torch.tensor([p + [0] * (T - len(p)) for p in prompts], dtype=torch.long, device=device)
    pos_BT = torch.arange(T, device=device).expand(len(prompts), T)
    cos_BTE, sin_BTE = model.rope_at(pos_BT)
    slot_B = torch.tensor(slots, dtype=torch.long, device=device)
    x_BTC = model.embed(ids_BT)
    for i, block in enumerate(model.blocks):
        q_BHTD, k_BKTD, v_BKTD = block.qkv(x_BTC, cos_BTE, sin_BTE)
        cache.k[i][slot_B, :, :T] = k_BKTD
        cache.v[i][slot_B, :, :T] = v_BKTD
        x_BTC = block.finish(x_BTC, attend(q_BHTD, k_BKTD, v_BKTD, None, True))
    for slot, n in zip(slots, lengths, strict=True):
        cache.lengths[slot] = n
    if every_position:
        return model.logits(x_BTC)
    last_BC = x_BTC[torch.arange(len(prompts), device=device), torch.tensor(lengths, device=device) - 1]
    return model.logits(last_BC)


@torch.inference_mode()
def decode(model: Transformer, cache: SlotCache, tokens: list[int | None]) -> torch.Tensor:
    """One token for each of slots 0..len(tokens)-1, at each slot's own length; logits (B, V).

    ``None`` marks a free slot: its row runs along on a dummy token at position 0 (the slot is
    rewritten by its next prefill), because taking slots as a leading slice keeps the cache
    reads views, not copies.
    """
    device = cache.k.device
    B = len(tokens)
    pos = [0 if t is None else n for t, n in zip(tokens, cache.lengths, strict=False)]
    S = max(pos) + 1
    pos_B = torch.tensor(pos, dtype=torch.long, device=device)
    rows_B = torch.arange(B, device=device)
    cos_BTE, sin_BTE = model.rope_at(pos_B[:, None])
    mask_B11S = (torch.arange(S, device=device)[None, :] <= pos_B[:, None])[:, None, None, :]
    x_BTC = model.embed(torch.tensor([t or 0 for t in tokens], dtype=torch.long, device=device)[:, None])
    for i, block in enumerate(model.blocks):
        q_BHTD, k_BKTD, v_BKTD = block.qkv(x_BTC, cos_BTE, sin_BTE)
        cache.k[i][rows_B, :, pos_B] = k_BKTD[:, :, 0]
        cache.v[i][rows_B, :, pos_B] = v_BKTD[:, :, 0]
        y_BHTD = attend(q_BHTD, cache.k[i, :B, :, :S], cache.v[i, :B, :, :S], mask_B11S, False)
        x_BTC = block.finish(x_BTC, y_BHTD)
    for slot, t in enumerate(tokens):
        cache.lengths[slot] += t is not None
    return model.logits(x_BTC[:, 0])


@torch.inference_mode()
def verify(model: Transformer, cache: SlotCache, rows: list[list[int] | None]) -> torch.Tensor:
    """Several tokens for each of slots 0..len(rows)-1, from each slot's own length on; logits (B, T, V).

    Row b's tokens take positions ``lengths[b]``, ``lengths[b] + 1``, ...; each sees its slot's keys up
    to its own position, so logits[b, t] is what ``decode`` would give after feeding the row's
    tokens one at a time. Keys and values are written for every given token but ``lengths`` do
    not move: the caller advances each slot over the tokens it keeps (``speculate``), and later
    writes overwrite the rest. Shorter rows are padded to T; padding is neither written nor seen
    by a real token. ``None`` marks a free slot, as in ``decode``.
    """
    device = cache.k.device
    B, T, S_max = len(rows), max(len(r) for r in rows if r), cache.k.shape[3]
    real = [[] if r is None else r for r in rows]
    start = [cache.lengths[b] if r else 0 for b, r in enumerate(real)]
    if any(s + len(r) > S_max for s, r in zip(start, real, strict=True)):
        raise ValueError(f"verify would write past the context window ({S_max} tokens)")
    pos = [[min(s + t, S_max - 1) for t in range(T)] for s in start]  # padding: a RoPE position only
    pos_BT = torch.tensor(pos, dtype=torch.long, device=device)
    S = max(p[-1] for p in pos) + 1
    cos_BTE, sin_BTE = model.rope_at(pos_BT)
    mask_B1TS = (torch.arange(S, device=device)[None, None, :] <= pos_BT[:, :, None])[:, None]
    written = [(b, s + t) for b, (s, r) in enumerate(zip(start, real, strict=True)) for t in range(len(r))]
    row_N = torch.tensor([b for b, _ in written], dtype=torch.long, device=device)
    pos_N = torch.tensor([p for _, p in written], dtype=torch.long, device=device)
    real_BT = torch.tensor([[t < len(r) for t in range(T)] for r in real], device=device)
    ids_BT = torch.tensor([r + [0] * (T - len(r)) for r in real], dtype=torch.long, device=device)
    x_BTC = model.embed(ids_BT)
    for i, block in enumerate(model.blocks):
        q_BHTD, k_BKTD, v_BKTD = block.qkv(x_BTC, cos_BTE, sin_BTE)
        cache.k[i][row_N, :, pos_N] = k_BKTD.transpose(1, 2)[real_BT]  # (N, K, D)
        cache.v[i][row_N, :, pos_N] = v_BKTD.transpose(1, 2)[real_BT]
        y_BHTD = attend(q_BHTD, cache.k[i, :B, :, :S], cache.v[i, :B, :, :S], mask_B1TS, False)
        x_BTC = block.finish(x_BTC, y_BHTD)
    return model.logits(x_BTC)
