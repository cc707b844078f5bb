"""Which keys each query may see (documents, UL2 prefix), and the attention call: SDPA or FlexAttention.

Shape legend as in ``transformer``: B batch, T query length, S key length, H query heads,
K key/value heads, D head dim. One rule (``mask_rule``) defines the mask; the dense boolean
mask for SDPA and the FlexAttention block mask are both evaluated from it, so the two
paths cannot disagree. Masks are built once per forward and shared by every layer.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, create_mask, flex_attention

Mask = torch.Tensor | BlockMask | None
"""Dense boolean (B, 1, T, S) mask for SDPA, a FlexAttention block mask, or None (plain causal)."""
MaskRule = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def segments_from_eos(input_ids: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """Segment ids (int64, same shape) for raw packed tokens: 1, 2, 3, ... per document, 0 on padding.

    A document runs up to and including its closing EOS, the layout the next-token objective
    emits. Only for callers holding raw packed rows; objectives emit their own ``segment_ids``
    (a UL2 sample's inner EOS tokens are data, not boundaries).
    """
    is_eos = (input_ids == eos_id).long()
    doc = torch.cumsum(is_eos, dim=-1) - is_eos + 1  # the EOS still belongs to the document it closes
    return torch.where(input_ids == pad_id, 0, doc)


def mask_rule(segment_ids_BT: torch.Tensor | None, prefix_len_B: torch.Tensor | None) -> MaskRule:
    """``allowed(b, h, q, k)``: causal, OR both inside the UL2 prefix; AND same segment when given.

    Written with broadcasting tensor ops only, so it works both as a FlexAttention
    ``mask_mod`` (scalar indices under vmap) and on index grids for the dense mask. The
    diagonal is always allowed (k == q is causal and in its own segment), so no row is
    fully masked and softmax never sees only -inf.
    """

    def allowed(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        ok = k <= q
        if prefix_len_B is not None:
            p = prefix_len_B[b]
            ok = ok | ((q < p) & (k < p))
        if segment_ids_BT is not None:
            ok = ok & (segment_ids_BT[b, q] == segment_ids_BT[b, k])
        return ok

    return allowed


def dense_mask(rule: MaskRule, B: int, T: int, device: torch.device) -> torch.Tensor:
    """The rule evaluated on every (b, q, k): boolean (B, 1, T, T), True = may attend."""
    b = torch.arange(B, device=device)[:, None, None]
    head = torch.zeros((), dtype=torch.long, device=device)  # the rule ignores heads: one mask for all
    pos = torch.arange(T, device=device)
    return rule(b, head, pos[None, :, None], pos[None, None, :]).expand(B, T, T)[:, None]


@cache
def _compiled_block_mask() -> Callable[..., BlockMask]:
    # Eager create_block_mask materialises the full (B, T, T) mask; compiled it works block by block.
    return torch.compile(create_block_mask)


@cache
def _compiled_flex() -> Callable[..., torch.Tensor]:
    # Eager flex_attention is an unfused reference; only the compiled call is a fused (flash-style) kernel.
    return torch.compile(flex_attention, dynamic=False)


@cache
def flex_backward_on_cpu() -> bool:
    """Whether this torch can backpropagate through FlexAttention on the CPU (2.7 can; 2.15 raises
    "FlexAttention does not support backward on CPU"). Probed once on a 1x1x8x8 call, not guessed
    from the version."""
    q = torch.zeros(1, 1, 8, 8, requires_grad=True)
    try:
        flex_attention(q, q, q).sum().backward()
    except NotImplementedError:
        return False
    return True


def build_mask(impl: str, doc_mask: bool, segment_ids_BT: torch.Tensor | None, prefix_len_B: torch.Tensor | None,
               B: int, T: int, device: torch.device) -> Mask:
    """The mask shared by every layer of one forward, or None when plain causal attention is exact.

    ``impl`` is ``model.attn_impl``: ``sdpa`` → dense boolean mask, ``flex`` → block mask,
    ``auto`` → flex on CUDA, sdpa elsewhere. Segments count only with ``doc_mask``; without
    segment ids the row is one document.
    """
    segments = segment_ids_BT if doc_mask else None
    if segments is None and prefix_len_B is None:
        return None  # SDPA's is_causal path: flash kernel, no mask tensor
    rule = mask_rule(segments, None if prefix_len_B is None else prefix_len_B.reshape(B))
    use_flex = impl == "flex" or (impl == "auto" and device.type == "cuda")
    if not use_flex:
        return dense_mask(rule, B, T, device)
    make = _compiled_block_mask() if device.type == "cuda" else create_block_mask
    return make(rule, B, None, T, T, device=device)  # H=None: one mask broadcast over heads


def attend(q_BHTD: torch.Tensor, k_BKSD: torch.Tensor, v_BKSD: torch.Tensor, mask: Mask,
           is_causal: bool) -> torch.Tensor:
    """Attention output (B, H, T, D); a block mask goes to FlexAttention, anything else to SDPA.

    ``is_causal`` applies only when ``mask`` is None (SDPA aligns it top-left, so callers
    with cached keys pass an explicit mask instead). K < H is grouped-query attention.

    With a dense mask, GQA's key/value heads are repeated to H before SDPA: torch 2.7's SDPA
    serves ``enable_gqa=True`` with an explicit ``attn_mask`` by the math kernel only (it
    materialises the (B, H, T, S) scores in fp32), while equal head counts take the
    memory-efficient kernel. The math kernel repeats K and V itself, so this costs no memory it
    would not have spent.
    """
    gqa = k_BKSD.shape[1] != q_BHTD.shape[1]
    if isinstance(mask, BlockMask) and not q_BHTD.is_cuda and q_BHTD.requires_grad and not flex_backward_on_cpu():
        # Training on a CPU whose torch has no FlexAttention backward: the same rule as a dense mask.
        mask = create_mask(mask.mask_mod, q_BHTD.shape[0], None, *mask.seq_lengths, device=q_BHTD.device)
    if isinstance(mask, BlockMask):
        flex = _compiled_flex() if q_BHTD.is_cuda else flex_attention
        return flex(q_BHTD, k_BKSD, v_BKSD, block_mask=mask, enable_gqa=gqa)
    if gqa and mask is not None:
        group = q_BHTD.shape[1] // k_BKSD.shape[1]
        k_BKSD, v_BKSD = k_BKSD.repeat_interleave(group, dim=1), v_BKSD.repeat_interleave(group, dim=1)  # (B, H, S, D)
        gqa = False
    return F.scaled_dot_product_attention(
        q_BHTD, k_BKSD, v_BKSD, attn_mask=mask, is_causal=is_causal and mask is None, enable_gqa=gqa,
    )
