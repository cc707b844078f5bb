import math

import pytest
import torch

from llmfoundry_lite.models.attention import segments_from_eos
from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.loss import IGNORE_INDEX, lm_loss
from llmfoundry_lite.models.transformer import Transformer


def tiny(**kw) -> ModelConfig:
    base = {"d_model": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 97, "max_seq_len": 32}
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("kw", [{}, {"n_kv_heads": 2}, {"n_kv_heads": 1, "tie_embeddings": True}, {"ffn_hidden_size": 80}])
def test_parameter_count_formula_matches_module(kw):
    cfg = tiny(**kw)
    assert sum(p.numel() for p in Transformer(cfg).parameters()) == cfg.num_params()


def test_default_ffn_is_eight_thirds_rounded_to_64():
    assert tiny(d_model=768).ffn_dim == 2048  # 8/3·768 = 2048 exactly
    assert tiny(d_model=1024, n_heads=8).ffn_dim == 2752  # 2730.7 → next multiple of 64


def test_tied_embeddings_share_one_tensor():
    m = Transformer(tiny(tie_embeddings=True))
    assert m.lm_head.weight is m.embed.weight


def test_residual_projections_are_scaled_by_depth():
    torch.manual_seed(0)
    cfg = tiny(d_model=256, n_layers=8, init_std=0.02)
    m = Transformer(cfg)
    assert m.blocks[0].attn.qkv_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert m.blocks[0].mlp.down_proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert m.blocks[0].attn.o_proj.weight.std().item() == pytest.approx(0.005, rel=0.05)


def test_loss_shifts_and_ignores_minus_100():
    logits = torch.zeros(1, 3, 5)
    logits[0, 0, 2] = 10.0  # position 0 predicts token 2 confidently
    labels = torch.tensor([[7, 2, IGNORE_INDEX]])  # label[0] is never predicted; label[2] ignored
    expected = torch.nn.functional.cross_entropy(logits[0, :1], torch.tensor([2]))
    assert lm_loss(logits, labels).item() == pytest.approx(expected.item())


def test_causal_output_does_not_depend_on_future_tokens():
    torch.manual_seed(0)
    m = Transformer(tiny()).eval()
    x = torch.randint(2, 97, (1, 16))
    y = x.clone()
    y[0, 10:] = 5
    assert torch.allclose(m(x)[0, :10], m(y)[0, :10], atol=1e-6)
    assert not torch.allclose(m(x)[0, 10:], m(y)[0, 10:])


def test_doc_mask_isolates_documents_in_a_packed_row():
    torch.manual_seed(0)
    m = Transformer(tiny(doc_mask=True, eos_id=0)).eval()
    doc2 = torch.randint(2, 97, (1, 6))
    a = torch.cat([torch.randint(2, 97, (1, 5)), torch.zeros(1, 1, dtype=torch.long), doc2], dim=1)
    b = torch.cat([torch.randint(2, 97, (1, 9)), torch.zeros(1, 1, dtype=torch.long), doc2], dim=1)
    alone = m(doc2)
    # The second document's logits are as if it stood alone (RoPE is relative, so the offset is irrelevant).
    for row, start in ((a, 6), (b, 10)):
        segments = segments_from_eos(row, eos_id=0, pad_id=1)
        assert torch.allclose(m(row, segment_ids_BT=segments)[0, start:], alone[0], atol=1e-5)
        assert not torch.allclose(m(row)[0, start:], alone[0], atol=1e-3)  # no segment ids: one document


def test_gqa_matches_mha_with_repeated_kv_heads():
    torch.manual_seed(0)
    gqa = Transformer(tiny(n_kv_heads=2)).eval()
    mha = Transformer(tiny()).eval()
    state = gqa.state_dict()
    for i in range(2):
        q, k, v = state[f"blocks.{i}.attn.qkv_proj.weight"].split([64, 32, 32])
        k, v = (w.view(2, 16, 64).repeat_interleave(2, dim=0).reshape(64, 64) for w in (k, v))  # (K, D, C) → (H, D, C)
        state[f"blocks.{i}.attn.qkv_proj.weight"] = torch.cat([q, k, v])
    mha.load_state_dict(state)
    x = torch.randint(0, 97, (2, 12))
    assert torch.allclose(gqa(x), mha(x), atol=1e-5)


def test_meta_device_build_allocates_nothing():
    with torch.device("meta"):
        m = Transformer(tiny(d_model=2048, n_layers=24, n_heads=16, vocab_size=32768))
    assert m.embed.weight.is_meta
    assert sum(p.numel() for p in m.parameters()) == m.cfg.num_params()


def test_flops_per_token_formula():
    cfg = tiny(vocab_size=100, d_model=64, n_layers=2, max_seq_len=32, ffn_hidden_size=128)
    per_layer = 4 * 64 * 64 + 3 * 64 * 128
    assert cfg.flops_per_token() == 6 * (2 * per_layer + 100 * 64) + 12 * 2 * 64 * 32


def test_loss_of_a_batch_without_target_tokens_is_finite_with_zero_gradient():
    """A microbatch whose labels are all -100 (UL2 targets cut, only padding) must not give NaN."""
    logits = torch.randn(2, 5, 11, requires_grad=True)
    loss = lm_loss(logits, torch.full((2, 5), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(loss)
    assert torch.count_nonzero(logits.grad) == 0
