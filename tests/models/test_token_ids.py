"""No hard-coded token ids: padding and end-of-text come from the tokenizer in the HF export and in the
unigram baseline, for a tokenizer whose pad is not 1 and for an HF base that lacks our special tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from streaming import MDSWriter, StreamingDataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.hf_export import export_hf
from llmfoundry_lite.models.load import load_for_inference
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.objectives import ObjectiveConfig, build_objective
from llmfoundry_lite.tokenizer.special import EOS, PAD, special_tokens
from llmfoundry_lite.training.data import ObjectiveDataset, unigram_entropy

TEXT = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i * i)\n",
        "class Point:\n    x: int = 0\n    y: int = 0\n"] * 20


def bpe(specials: list[str], vocab_size: int = 400) -> Tokenizer:
    """A small byte-level BPE with ``specials`` at ids 0, 1, ... in the order given."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXT, trainer)
    return tok


def pad_first() -> Tokenizer:
    """Our special tokens with padding and end-of-text swapped: pad 0, eos 1."""
    specials = special_tokens(num_reserved=4)
    specials[0], specials[1] = specials[1], specials[0]
    tok = bpe(specials)
    assert (tok.token_to_id(PAD), tok.token_to_id(EOS)) == (0, 1)
    return tok


def tiny(vocab_size: int, **kw) -> ModelConfig:
    return ModelConfig(d_model=32, n_layers=1, n_heads=4, vocab_size=vocab_size, max_seq_len=32, **kw)


def assert_consistent(out, vocab_size: int, eos_id: int, pad_id: int) -> None:
    """config.json, generation_config.json and the tokenizer name the same ids, all inside the vocabulary."""
    config, generation = json.loads((out / "config.json").read_text()), GenerationConfig.from_pretrained(out)
    hf_tok = AutoTokenizer.from_pretrained(out)
    assert (config["eos_token_id"], config["pad_token_id"]) == (eos_id, pad_id)
    assert (hf_tok.eos_token_id, hf_tok.pad_token_id) == (eos_id, pad_id)
    assert (generation.eos_token_id, generation.pad_token_id) == (eos_id, pad_id)
    assert len(hf_tok) <= vocab_size  # no special token was added past the embedding rows


def test_export_takes_pad_and_eos_from_a_tokenizer_whose_pad_is_not_1(tmp_path):
    tok = pad_first()
    model = Transformer(tiny(tok.get_vocab_size()))
    out = export_hf(model, tok, tmp_path / "hf")
    assert_consistent(out, tok.get_vocab_size(), eos_id=1, pad_id=0)


def test_export_of_an_hf_base_without_our_special_tokens_keeps_its_ids_inside_the_vocabulary(tmp_path):
    # A Llama base as HF ships one: <unk> <s> </s> at 0-2, no <|endoftext|>, no pad token.
    tok = bpe(["<unk>", "<s>", "</s>"])
    base = tmp_path / "base"
    LlamaForCausalLM(LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=32,
                                 bos_token_id=1, eos_token_id=2, pad_token_id=None)).save_pretrained(base)
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(base)
    model, loaded = load_for_inference(str(base))  # how fine-tuning loads an HF base
    assert model.cfg.eos_id == 2
    out = export_hf(model, loaded, tmp_path / "export")
    assert_consistent(out, tok.get_vocab_size(), eos_id=2, pad_id=2)  # no pad of its own: pads with </s>
    with torch.no_grad():
        ids = torch.tensor([tok.encode("def add(a, b):").ids])
        torch.testing.assert_close(LlamaForCausalLM.from_pretrained(out)(ids).logits, model(ids), atol=1e-5, rtol=1e-4)


def test_export_refuses_a_tokenizer_larger_than_the_model(tmp_path):
    tok = pad_first()
    with pytest.raises(ValueError, match=r"holds 400 tokens .* vocab_size=300"):
        export_hf(Transformer(tiny(300)), tok, tmp_path / "export")
    assert not (tmp_path / "export").exists()  # refused before any file is written


def test_unigram_baseline_leaves_out_the_tokenizers_pad(tmp_path):
    tok = pad_first()
    pad, eos = tok.token_to_id(PAD), tok.token_to_id(EOS)
    rows = []
    for text in TEXT[:3]:
        ids = [*tok.encode(text).ids, eos]
        rows.append(np.asarray(ids + [pad] * (32 - len(ids)), dtype=np.int32))
    with MDSWriter(out=str(tmp_path / "val"), columns={"tokens": "ndarray:int32"}) as w:
        for row in rows:
            w.write({"tokens": row})
    dataset = ObjectiveDataset(objective=build_objective(ObjectiveConfig(), tok, 32), local=str(tmp_path / "val"),
                               shuffle=False, batch_size=1)
    tokens = np.concatenate(rows)
    p = np.bincount(tokens[tokens != pad]) / (tokens != pad).sum()
    expected = -(p[p > 0] * np.log(p[p > 0])).sum()
    # What the run summary computes: the pad id of the objective's tokenizer (1 is end-of-text here).
    assert unigram_entropy(dataset, dataset.objective.special.pad) == pytest.approx(expected)
    assert StreamingDataset.get_item(dataset, 0)["tokens"][-1] == pad
