"""Attention masks from segment ids and a UL2 prefix; FlexAttention and dense SDPA agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.attention.flex_attention import BlockMask

from llmfoundry_lite.models.attention import attend, build_mask, dense_mask, mask_rule, segments_from_eos
from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.objectives.special_ids import SpecialIds
from llmfoundry_lite.objectives.ul2 import UL2, Denoiser

CPU = torch.device("cpu")
EOS, PAD = 0, 1


def tiny(**kw) -> ModelConfig:
    base = {"d_model": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 97, "max_seq_len": 160, "init_std": 0.2}
    return ModelConfig(**{**base, **kw})


def segments(*rows: list[tuple[int, int]]) -> torch.Tensor:
    """(B, T) segment ids from per-row (segment id, run length) pairs."""
    return torch.tensor([[s for s, n in row for _ in range(n)] for row in rows])


def test_segments_from_eos_closes_each_document_with_its_eos_and_zeros_padding():
    ids = torch.tensor([[5, 0, 7, 8, 0, 0, 9, 1, 1]])
    assert segments_from_eos(ids, eos_id=EOS, pad_id=PAD).tolist() == [[1, 1, 2, 2, 2, 3, 4, 0, 0]]


def test_hand_computed_masks():
    seg = torch.tensor([[1, 1, 2, 2, 0]])
    doc = dense_mask(mask_rule(seg, None), 1, 5, CPU)[0, 0].int().tolist()
    assert doc == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 0, 1],  # padding (segment 0) sees itself: no row is ever fully masked
    ]
    prefix = dense_mask(mask_rule(None, torch.tensor([3])), 1, 5, CPU)[0, 0].int().tolist()
    assert prefix == [
        [1, 1, 1, 0, 0],  # bidirectional inside the prefix
        [1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
    ]
    both = dense_mask(mask_rule(torch.tensor([[1, 1, 1, 2, 0]]), torch.tensor([2])), 1, 5, CPU)[0, 0].int().tolist()
    assert both == [
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1],
    ]


def test_mask_is_built_only_when_needed_and_of_the_chosen_kind():
    seg, prefix = segments([(1, 3), (2, 5)]), torch.tensor([4])
    assert build_mask("auto", False, seg, None, 1, 8, CPU) is None  # segments count only with doc_mask
    assert build_mask("flex", True, None, None, 1, 8, CPU) is None  # doc_mask without segments: one document
    assert isinstance(build_mask("auto", True, seg, None, 1, 8, CPU), torch.Tensor)  # auto is sdpa off CUDA
    assert isinstance(build_mask("sdpa", False, None, prefix, 1, 8, CPU), torch.Tensor)
    assert isinstance(build_mask("flex", True, seg, prefix, 1, 8, CPU), BlockMask)


def test_unknown_attn_impl_is_refused():
    with pytest.raises(ValueError, match=r"model.attn_impl 'xformers'; choose from \['auto', 'flex', 'sdpa'\]"):
        tiny(attn_impl="xformers")


CASES = {
    # name: (segment ids (B, T) or None, prefix_len (B,) or None, n_kv_heads)
    "doc-segments-and-padding": (segments([(1, 20), (2, 7), (3, 9), (0, 4)]), None, None),
    "ul2-prefix": (None, torch.tensor([17]), None),
    "doc-and-prefix": (segments([(1, 30), (0, 10)]), torch.tensor([12]), None),
    "gqa": (segments([(1, 11), (2, 25), (0, 4)]), torch.tensor([6]), 2),
    "rows-differ": (segments([(1, 5), (2, 30), (0, 5)], [(1, 40)], [(1, 13), (2, 13), (3, 13), (0, 1)]),
                    torch.tensor([0, 21, 3]), 1),
    "longer-than-one-block": (segments([(1, 100), (2, 50), (0, 10)]), torch.tensor([70]), 2),
}


@pytest.mark.parametrize("name", list(CASES))
def test_flex_equals_dense_sdpa_in_outputs_and_gradients(name):
    seg_BT, prefix_B, n_kv = CASES[name]
    B, T = seg_BT.shape if seg_BT is not None else (1, 40)
    torch.manual_seed(0)
    q = torch.randn(B, 4, T, 16, requires_grad=True)
    k, v = (torch.randn(B, n_kv or 4, T, 16, requires_grad=True) for _ in range(2))
    outs = []
    for impl in ("sdpa", "flex"):
        y = attend(q, k, v, build_mask(impl, True, seg_BT, prefix_B, B, T, CPU), is_causal=True)
        outs.append((y, *torch.autograd.grad((y * torch.linspace(-1, 1, 16)).sum(), (q, k, v))))
    for dense, flex in zip(*outs, strict=True):
        torch.testing.assert_close(flex, dense, atol=1e-5, rtol=1e-5)


def test_dense_mask_with_gqa_hands_sdpa_equal_head_counts_with_the_same_result(monkeypatch):
    # torch 2.7's SDPA serves enable_gqa=True with an attn_mask by the math kernel only: attend repeats
    # the KV heads first, so the call SDPA receives has H heads everywhere (and no enable_gqa).
    seg_BT, prefix_B, n_kv = CASES["gqa"]
    B, T = seg_BT.shape
    torch.manual_seed(0)
    q = torch.randn(B, 4, T, 16, requires_grad=True)
    k, v = (torch.randn(B, n_kv, T, 16, requires_grad=True) for _ in range(2))
    mask = build_mask("sdpa", True, seg_BT, prefix_B, B, T, CPU)
    weight = torch.linspace(-1, 1, 16)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    before = sdpa(q, k, v, attn_mask=mask, enable_gqa=True)  # the call attend made before
    before_grads = torch.autograd.grad((before * weight).sum(), (q, k, v))
    calls = []

    def recording(q_, k_, v_, attn_mask=None, is_causal=False, enable_gqa=False, **kw):
        calls.append((q_.shape[1], k_.shape[1], v_.shape[1], attn_mask is not None, enable_gqa))
        return sdpa(q_, k_, v_, attn_mask=attn_mask, is_causal=is_causal, enable_gqa=enable_gqa, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    after = attend(q, k, v, mask, is_causal=True)
    assert calls == [(4, 4, 4, True, False)]
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-6)
    for new, old in zip(torch.autograd.grad((after * weight).sum(), (q, k, v)), before_grads, strict=True):
        torch.testing.assert_close(new, old, atol=1e-6, rtol=1e-6)
    attend(q, k, v, None, is_causal=True)  # no mask: the causal flash path keeps the KV heads grouped
    assert calls[-1] == (4, n_kv, n_kv, False, True)


@pytest.mark.parametrize("name", ["doc-and-prefix", "rows-differ"])
def test_flex_model_equals_sdpa_model_in_logits_and_weight_gradients(name):
    seg_BT, prefix_B, n_kv = CASES[name]
    torch.manual_seed(0)
    models = {impl: Transformer(tiny(doc_mask=True, n_kv_heads=n_kv, attn_impl=impl)) for impl in ("sdpa", "flex")}
    models["flex"].load_state_dict(models["sdpa"].state_dict())
    ids_BT = torch.randint(2, 97, seg_BT.shape)
    grads = {}
    for impl, m in models.items():
        logits = m(ids_BT, segment_ids_BT=seg_BT, prefix_len_B=prefix_B)
        logits.float().square().mean().backward()
        grads[impl] = (logits.detach(), *(p.grad for p in m.parameters()))
    for dense, flex in zip(grads["sdpa"], grads["flex"], strict=True):
        torch.testing.assert_close(flex, dense, atol=1e-5, rtol=1e-4)


def test_doc_mask_without_segment_ids_is_plain_causal():
    torch.manual_seed(0)
    m = Transformer(tiny(doc_mask=True)).eval()
    ids = torch.tensor([[5, 6, EOS, 7, 8, EOS, 9]])
    plain = Transformer(tiny()).eval()
    plain.load_state_dict(m.state_dict())
    torch.testing.assert_close(m(ids), plain(ids), atol=0, rtol=0)  # EOS tokens are not boundaries by themselves


def test_segment_ids_are_refused_with_a_kv_cache():
    from llmfoundry_lite.models.transformer import KVCache

    m = Transformer(tiny(doc_mask=True))
    cache = KVCache(m.cfg, 1, 8, CPU, torch.float32)
    with pytest.raises(ValueError, match="not with a KV cache"):
        m(torch.tensor([[5, 6]]), segment_ids_BT=torch.tensor([[1, 1]]), cache=cache)


def fake_special() -> SpecialIds:
    """Special ids for a 97-token toy vocabulary (no tokenizer needed): 0 EOS, 1 pad, 5-7 modes, 8-19 sentinels."""
    return SpecialIds(eos=EOS, pad=PAD, fim_prefix=2, fim_middle=3, fim_suffix=4,
                      ul2_modes={"R": 5, "S": 6, "X": 7}, sentinels=tuple(range(8, 20)),
                      is_special=np.arange(97) < 20)


@pytest.mark.parametrize("impl", ["sdpa", "flex"])
def test_ul2_targets_see_the_mode_token_across_an_inner_eos(impl):
    # The old EOS-inferred doc mask cut a UL2 body at the EOS copied from its source, so
    # the targets lost the mode token and the inputs before that EOS.
    L = 24
    source = np.array([30, 31, 32, EOS, 40, 41, 42, 43, 44, 45, EOS, 50] + [PAD] * 12, dtype=np.int32)
    out = UL2([(Denoiser("S", 0.25), 1.0)], fake_special(), L)(source, np.random.default_rng(0))
    ids_BT, seg_BT, prefix_B = (torch.from_numpy(out[key]).reshape(1, -1) for key in ("input_ids", "segment_ids", "prefix_len"))
    p, end = int(prefix_B), int((ids_BT[0] != PAD).sum())
    assert EOS in ids_BT[0, 1:p].tolist()  # the inner EOS sits in the inputs, before the targets
    mask = dense_mask(mask_rule(seg_BT, prefix_B.reshape(1)), 1, L, CPU)[0, 0]
    assert mask[p:end, :p].all()  # every target sees the mode token and all inputs
    eos_mask = dense_mask(mask_rule(segments_from_eos(ids_BT, EOS, PAD), None), 1, L, CPU)[0, 0]
    assert not eos_mask[p:end, 0].any()  # what the EOS-derived segments would have done

    torch.manual_seed(0)
    m = Transformer(tiny(doc_mask=True, attn_impl=impl)).eval()
    other_mode = ids_BT.clone()
    other_mode[0, 0] = 7
    a = m(ids_BT, segment_ids_BT=seg_BT, prefix_len_B=prefix_B.reshape(1))
    b = m(other_mode, segment_ids_BT=seg_BT, prefix_len_B=prefix_B.reshape(1))
    assert (a[0, p:end] - b[0, p:end]).abs().amax(dim=-1).min() > 1e-3  # each target's output depends on the mode


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compiled_flex_on_cuda_matches_dense_sdpa_in_bf16():
    seg_BT, prefix_B, n_kv = CASES["longer-than-one-block"]
    dev = torch.device("cuda")
    seg_BT, prefix_B = seg_BT.to(dev), prefix_B.to(dev)
    B, T = seg_BT.shape
    torch.manual_seed(0)
    q = torch.randn(B, 4, T, 64, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(B, n_kv, T, 64, device=dev, dtype=torch.bfloat16) for _ in range(2))
    assert isinstance(build_mask("auto", True, seg_BT, prefix_B, B, T, dev), BlockMask)
    dense = attend(q, k, v, build_mask("sdpa", True, seg_BT, prefix_B, B, T, dev), is_causal=True)
    flex = attend(q, k, v, build_mask("flex", True, seg_BT, prefix_B, B, T, dev), is_causal=True)
    torch.testing.assert_close(flex.float(), dense.float(), atol=2e-2, rtol=2e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_dense_mask_with_gqa_runs_on_the_memory_efficient_kernel():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    seg_BT, prefix_B, n_kv = CASES["longer-than-one-block"]
    dev = torch.device("cuda")
    B, T = seg_BT.shape
    mask = build_mask("sdpa", True, seg_BT.to(dev), prefix_B.to(dev), B, T, dev)
    torch.manual_seed(0)
    q = torch.randn(B, 4, T, 64, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(B, n_kv, T, 64, device=dev, dtype=torch.bfloat16) for _ in range(2))
    reference = attend(q, k, v, mask, is_causal=True)
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):  # refuses a call it cannot serve instead of falling back
        efficient = attend(q, k, v, mask, is_causal=True)
    torch.testing.assert_close(efficient.float(), reference.float(), atol=0, rtol=0)
