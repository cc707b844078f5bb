"""FIM for any base: the template is detected from the tokenizer's special tokens, the ids sent are the
family's sentinels around the encoded texts, a middle ends at the family's end tokens, a model without
FIM tokens refuses ``suffix`` and an impossible ``--fim-template`` fails at start-up.

No tokenizer can be downloaded here, so each family gets a small byte-level BPE with that family's
special tokens added (real tokenizers register them the same way, as special added tokens).
"""

from __future__ import annotations

import httpx
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.generate import generate
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.serve.app import build_app
from llmfoundry_lite.serve.engine import ContinuousEngine
from llmfoundry_lite.serve.protocol import ServedModel
from llmfoundry_lite.tokenizer.io import encode_texts, text_safe
from tests.serve.conftest import live_server

EOS = "<|endoftext|>"
FAMILIES = {  # (BOS or None, prefix, suffix, middle, end tokens): the spellings the real tokenizers use
    "starcoder": (None, "<fim_prefix>", "<fim_suffix>", "<fim_middle>", ["<fim_pad>", "<file_sep>"]),
    "codellama": ("<s>", "▁<PRE>", "▁<SUF>", "▁<MID>", ["▁<EOT>", "</s>"]),
    "deepseek": ("<｜begin▁of▁sentence｜>", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>",
                 ["<｜end▁of▁sentence｜>", "<|EOT|>"]),
    "qwen": (None, "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
             ["<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>"]),
}  # fmt: skip
CODE = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n", "class Point:\n    x: int = 0\n"]
PREFIX, SUFFIX = "def area(r):\n    return ", "\n\nprint(area(2))\n"


def family_tokenizer(family: str | None) -> Tokenizer:
    """A byte-level BPE over ``CODE`` with EOS and, for ``family``, its BOS, sentinels and end tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(CODE * 10, trainer)
    if family is not None:
        bos, pre, suf, mid, ends = FAMILIES[family]
        tok.add_special_tokens([t for t in (bos, pre, suf, mid, *ends) if t is not None])
    return text_safe(tok)


def expected_ids(tok: Tokenizer, family: str, prefix: str, suffix: str) -> list[int]:
    """The family's layout written out by hand: CodeLlama's tokenizer encodes ``" " + prefix``."""
    bos, pre, suf, mid, _ = FAMILIES[family]
    lead = " " if family == "codellama" else ""
    enc_pre, enc_suf = encode_texts(tok, [lead + prefix, suffix])
    first = [] if bos is None else [tok.token_to_id(bos)]
    return [*first, tok.token_to_id(pre), *enc_pre, tok.token_to_id(suf), *enc_suf, tok.token_to_id(mid)]


def tiny_model(tok: Tokenizer) -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=tok.get_vocab_size(),
                      max_seq_len=256, init_std=0.3)  # fmt: skip
    return Transformer(cfg).eval()


@pytest.fixture(scope="module", params=[*FAMILIES, None], ids=[*FAMILIES, "no-fim"])
def family_server(request):
    """A live server over a tiny model whose tokenizer carries one family's FIM tokens (or none), ``auto``."""
    torch.set_num_threads(1)
    tok = family_tokenizer(request.param)
    model = tiny_model(tok)
    engine = ContinuousEngine(model, tok, max_batch=2, max_waiting=8)
    served = ServedModel("m", tok, model.cfg.max_seq_len, tok.token_to_id(EOS), 2)
    with live_server(build_app(engine, served)) as url:
        yield request.param, url, model, tok
    engine.close()


def test_suffix_requests_use_the_tokenizers_family_and_stop_at_its_end_tokens(family_server):
    family, url, model, tok = family_server
    check_infill(family, url, model, tok)


def test_end_tokens_stop_drafted_greedy_decoding_too():
    """The server's default for greedy requests drafts several tokens a step: a middle still ends at its end token."""
    from llmfoundry_lite.serve.config import ServeConfig

    tok = family_tokenizer("starcoder")
    model = tiny_model(tok)
    engine = ContinuousEngine(model, tok, 2, 8, speculation=ServeConfig(model="unused").speculation())
    with live_server(build_app(engine, ServedModel("m", tok, 256, tok.token_to_id(EOS), 2))) as url:
        check_infill("starcoder", url, model, tok)
    assert engine.stats()["spec_accepted"] > 0  # a drafted token was kept: the multi-token path ran
    engine.close()


def check_infill(family: str | None, url: str, model: Transformer, tok: Tokenizer) -> None:
    """A greedy ``suffix`` request equals direct generation from the family's ids, cut at its end tokens."""
    body = {"model": "m", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 32, "temperature": 0}
    got = httpx.post(f"{url}/v1/completions", json=body, timeout=30)
    if family is None:
        assert got.status_code == 400, got.text
        err = got.json()["error"]
        assert err["param"] == "suffix" and "cannot infill" in err["message"] and "<|fim_prefix|>" in err["message"]
        return
    assert got.status_code == 200, got.text
    ids = expected_ids(tok, family, PREFIX, SUFFIX)
    ends = {tok.token_to_id(t) for t in (EOS, *FAMILIES[family][1:4], *FAMILIES[family][4])}
    with torch.no_grad():
        want = generate(model, torch.tensor([ids]), 32, stop=lambda new: new[-1] in ends)[0]
    out = got.json()
    assert out["usage"]["prompt_tokens"] == len(ids)
    assert out["usage"]["completion_tokens"] == len(want)
    assert out["choices"][0]["text"] == tok.decode([t for t in want if t not in ends])
    assert out["choices"][0]["finish_reason"] == ("stop" if want[-1] in ends else "length")
    if family == "starcoder":  # these weights end this middle at <file_sep>, not EOS: the end-token path runs
        assert want[-1] == tok.token_to_id("<file_sep>") and len(want) < 32


@pytest.mark.parametrize("family", list(FAMILIES))
def test_detection_and_ids_per_family(family):
    from llmfoundry_lite.serve.fim import resolve_fim

    tok = family_tokenizer(family)
    fim = resolve_fim(tok)
    assert fim is not None and fim.name == family
    prefix = "x = '<fim_prefix>' + \"<|fim_suffix|>\"  # literal sentinels stay text\n"
    ids = fim.prompt_ids(prefix, SUFFIX)
    assert ids == expected_ids(tok, family, prefix, SUFFIX)
    specials = set(tok.get_added_tokens_decoder())
    assert sum(i in specials for i in ids) == (4 if FAMILIES[family][0] else 3)  # only the layout's own
    ends = {tok.token_to_id(t) for t in (*FAMILIES[family][1:4], *FAMILIES[family][4])}
    assert fim.end_ids - {tok.token_to_id(EOS)} == ends  # EOS ends every completion anyway


def test_codellama_ids_equal_transformers_codellama_tokenizer():
    """On a SentencePiece-style vocabulary (Llama's ``▁`` for spaces and a dummy ``▁`` before each text, CodeLlama's
    ``tokenizer.json`` layout) the ids are what transformers' ``CodeLlamaTokenizerFast`` makes of
    ``tok(prefix, suffix=suffix)``; the same vocabulary with the dummy prefix in a ``Metaspace`` pre-tokenizer
    (newer Llama conversions) gives the same ids."""
    from tokenizers import normalizers
    from transformers import CodeLlamaTokenizerFast

    from llmfoundry_lite.serve.fim import resolve_fim

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    alphabet = sorted(set("".join(CODE + [PREFIX, SUFFIX]).replace(" ", "▁")) | {"▁"})
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=alphabet)  # fmt: skip
    tok.train_from_iterator(CODE * 10, trainer)
    tok.add_special_tokens(["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"])
    hf = CodeLlamaTokenizerFast(tokenizer_object=Tokenizer.from_str(tok.to_str()), bos_token="<s>", eos_token="</s>",
                                unk_token="<unk>")  # fmt: skip
    want = hf(PREFIX, suffix=SUFFIX)["input_ids"]
    pieces = hf.convert_ids_to_tokens(want)
    assert pieces[:2] == ["<s>", "▁<PRE>"] and pieces[2].startswith("▁d")  # one space before the prefix
    metaspace = Tokenizer.from_str(tok.to_str())
    metaspace.normalizer = None
    metaspace.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=False)
    for t in (tok, metaspace):
        fim = resolve_fim(text_safe(t))
        assert fim is not None and fim.name == "codellama" and fim.prompt_ids(PREFIX, SUFFIX) == want


def test_override_and_end_ids_reach_sampling():
    from llmfoundry_lite.serve.config import ServeConfig
    from llmfoundry_lite.serve.job import Job, SamplingParams
    from llmfoundry_lite.serve.protocol import CompletionRequest, sampling_params

    both = family_tokenizer("codellama")
    both.add_special_tokens(list(FAMILIES["starcoder"][1:4]))  # a vocabulary with two families' sentinels
    auto = ServedModel("m", both, 256, 0, 1)
    forced = ServedModel("m", both, 256, 0, 1, fim_template="starcoder")
    assert auto.fim.name == "codellama" and forced.fim.name == "starcoder"
    with pytest.raises(ValueError, match=r"--fim-template qwen: the tokenizer has no special tokens \['<\|fim_prefix"):
        ServedModel("m", both, 256, 0, 1, fim_template="qwen")
    with pytest.raises(ValueError, match="unknown --fim-template 'santa'"):
        ServeConfig(model="x", fim_template="santa")

    infill = sampling_params(CompletionRequest(model="m", prompt="a", suffix="b", temperature=0), auto)
    plain = sampling_params(CompletionRequest(model="m", prompt="a", temperature=0), auto)
    eot = both.token_to_id("▁<EOT>")
    assert eot in infill.end_ids and plain.end_ids == frozenset()
    job = Job([1], 1, SamplingParams(4, end_ids=infill.end_ids), lambda d: None)
    choice = job.start([b"x"] * both.get_vocab_size(), 0)[0]
    assert choice.push(5).finish_reason is None and choice.push(eot).finish_reason == "stop"


def test_ct2_backend_infills_with_the_same_template_and_ends(tmp_path):
    """CTranslate2 gets the same prompt ids (sentinels by name in its vocabulary) and stops at the same end token."""
    pytest.importorskip("ctranslate2")
    from llmfoundry_lite.models.hf_export import export_hf
    from llmfoundry_lite.serve.ct2 import CT2Engine, prepare_ct2

    tok = family_tokenizer("starcoder")
    model = tiny_model(tok)
    ct2_dir, ct2_tok, max_len = prepare_ct2(str(export_hf(model, tok, tmp_path / "hf")), None, "float32")
    engine = CT2Engine(ct2_dir, ct2_tok, "float32", max_batch=2, max_waiting=8)
    with live_server(build_app(engine, ServedModel("m", ct2_tok, max_len, ct2_tok.token_to_id(EOS), 2))) as url:
        body = {"model": "m", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 32, "temperature": 0}
        got = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()
    ids = expected_ids(tok, "starcoder", PREFIX, SUFFIX)
    ends = {tok.token_to_id(t) for t in (EOS, *FAMILIES["starcoder"][1:4], *FAMILIES["starcoder"][4])}
    with torch.no_grad():
        want = generate(model, torch.tensor([ids]), 32, stop=lambda new: new[-1] in ends)[0]
    assert want[-1] == tok.token_to_id("<file_sep>")  # ends at a FIM end token, not EOS
    assert (got["usage"]["prompt_tokens"], got["usage"]["completion_tokens"]) == (len(ids), len(want))
    assert got["choices"][0]["text"] == tok.decode(want[:-1]) and got["choices"][0]["finish_reason"] == "stop"
