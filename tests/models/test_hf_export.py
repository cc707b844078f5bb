import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.hf_export import export_hf
from llmfoundry_lite.models.load import load_for_inference
from llmfoundry_lite.models.transformer import Transformer
from tests.training.shards import TOKENIZER_DIR


def test_export_to_llama_matches_logits_and_round_trips(tmp_path):
    torch.manual_seed(0)
    for tie in (False, True):
        cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=1024, max_seq_len=64,
                          tie_embeddings=tie, rope_theta=50000.0)
        ours = Transformer(cfg).eval()
        tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
        out = export_hf(ours, tok, tmp_path / f"hf{tie}")
        hf = AutoModelForCausalLM.from_pretrained(out).eval()
        hf_tok = AutoTokenizer.from_pretrained(out)
        ids = torch.tensor([tok.encode("def add(a, b):\n    return a + b\n").ids])
        assert hf_tok("def add(a, b):\n    return a + b\n")["input_ids"] == ids[0].tolist()
        assert hf_tok.eos_token_id == 0 and hf_tok.pad_token_id == 1
        with torch.no_grad():
            torch.testing.assert_close(hf(ids).logits, ours(ids), atol=1e-5, rtol=1e-4)
        back, back_tok = load_for_inference(str(out))
        assert back.cfg == ours.cfg
        with torch.no_grad():
            torch.testing.assert_close(back(ids), ours(ids), atol=0.0, rtol=0.0)
        assert back_tok.encode("x = 1").ids == tok.encode("x = 1").ids
