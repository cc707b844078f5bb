import json

import torch
from safetensors import safe_open
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.hf_export import INDEX_NAME, WEIGHTS_NAME, export_hf, hf_names
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
        assert hf_tok.model_max_length == cfg.max_seq_len  # the context window, not HF's 1e30 placeholder
        with torch.no_grad():
            torch.testing.assert_close(hf(ids).logits, ours(ids), atol=1e-5, rtol=1e-4)
        back, back_tok = load_for_inference(str(out))
        assert back.cfg == ours.cfg
        with torch.no_grad():
            torch.testing.assert_close(back(ids), ours(ids), atol=0.0, rtol=0.0)
        assert back_tok.encode("x = 1").ids == tok.encode("x = 1").ids


def test_sharded_layout_from_a_live_model_loads_and_replaces_an_earlier_export(tmp_path):
    torch.manual_seed(1)
    tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    ids = torch.tensor([tok.encode("for i in range(3):\n    print(i)\n").ids])
    for tie in (False, True):
        cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=1024, max_seq_len=64,
                          tie_embeddings=tie)
        ours = Transformer(cfg).eval()
        out = tmp_path / f"hf{tie}"
        export_hf(ours, tok, out)  # one file first ...
        export_hf(ours, tok, out, max_shard_bytes=50_000)  # ... then shards over it
        index = json.loads((out / INDEX_NAME).read_text())
        files = sorted(p.name for p in out.glob("*.safetensors"))
        assert not (out / WEIGHTS_NAME).exists() and files == sorted(set(index["weight_map"].values()))
        assert len(files) > 3 and set(index["weight_map"]) == hf_names(cfg)
        assert index["metadata"]["total_size"] == 4 * cfg.num_params()
        hf = AutoModelForCausalLM.from_pretrained(out).eval()
        back, _ = load_for_inference(str(out))
        with torch.no_grad():
            torch.testing.assert_close(hf(ids).logits, ours(ids), atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(back(ids), ours(ids), atol=0.0, rtol=0.0)
        export_hf(ours, tok, out)  # and back to one file: no shard of the previous export survives
        assert sorted(p.name for p in out.glob("*.safetensors")) == [WEIGHTS_NAME] and not (out / INDEX_NAME).exists()


def test_export_dtype_is_stored_and_declared(tmp_path):
    cfg = ModelConfig(d_model=64, n_layers=1, n_heads=4, vocab_size=1024, max_seq_len=64)
    out = export_hf(Transformer(cfg), Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json")), tmp_path / "hf",
                    dtype=torch.bfloat16)
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(str(out / WEIGHTS_NAME), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
