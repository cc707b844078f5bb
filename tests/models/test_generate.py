import torch

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.generate import generate
from llmfoundry_lite.models.transformer import Transformer


def model(**kw) -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, vocab_size=97, max_seq_len=32, init_std=0.2, **kw)
    return Transformer(cfg).eval()


def greedy_without_cache(m: Transformer, prompt: torch.Tensor, n: int) -> list[list[int]]:
    seq = prompt
    for _ in range(n):
        seq = torch.cat([seq, m(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq[:, prompt.shape[1]:].tolist()


def test_kv_cache_greedy_equals_full_recompute():
    for kw in ({}, {"n_kv_heads": 2}):
        m = model(**kw)
        prompt = torch.randint(2, 97, (3, 7))
        assert generate(m, prompt, 12) == greedy_without_cache(m, prompt, 12)


def test_generation_past_max_seq_len_extends_rope():
    m = model()
    prompt = torch.randint(2, 97, (1, 30))
    assert generate(m, prompt, 10) == greedy_without_cache(m, prompt, 10)


def test_eos_stops_a_row_and_is_not_returned():
    m = model()
    prompt = torch.randint(2, 97, (2, 5))
    free = generate(m, prompt, 8)
    eos = free[0][3]
    out = generate(m, prompt, 8, eos_id=eos)
    assert out[0] == free[0][: free[0].index(eos)]


def test_stop_callback_ends_row_keeping_trigger():
    m = model()
    prompt = torch.randint(2, 97, (1, 5))
    out = generate(m, prompt, 10, stop=lambda toks: len(toks) >= 4)
    assert out == [generate(m, prompt, 4)[0]]


def test_sampling_is_reproducible_with_a_generator_and_top_p_tiny_is_greedy():
    m = model()
    prompt = torch.randint(2, 97, (4, 5))
    a = generate(m, prompt, 10, temperature=1.0, generator=torch.Generator().manual_seed(3))
    b = generate(m, prompt, 10, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert a == b
    assert generate(m, prompt, 10, temperature=0.8, top_p=1e-6) == generate(m, prompt, 10)
