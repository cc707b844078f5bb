"""``--lora NAME=PATH``: adapters of the base served beside it in one engine, batched together.

Two adapters of the tiny base: one trained and saved by our fine-tuning (a LoRA checkpoint), one made
by peft itself (random, nonzero B) and saved in peft's format. Each one's greedy output through the
server must equal what transformers generates from its merged export.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch
from safetensors.torch import load_file, save_file

from llmfoundry_lite.config import load_config
from llmfoundry_lite.serve.app import build_app
from llmfoundry_lite.serve.config import ServeConfig, parse_args
from llmfoundry_lite.serve.server import build_ours
from llmfoundry_lite.tokenizer.io import encode_texts
from tests.serve.conftest import MODEL_NAME, PROMPTS, live_server

PAIRS = [("Write a function that adds two numbers.", "def add(a, b):\n    return a + b\n"),
         ("Reverse a string.", "def reverse(s):\n    return s[::-1]\n")]


@pytest.fixture(scope="module")
def ours(hf_dir, tmp_path_factory):
    """A LoRA checkpoint written by our fine-tuning on the HF base (a large LR, so 2 steps move the output)."""
    from llmfoundry_lite.finetune.config import FinetuneConfig
    from llmfoundry_lite.finetune.trainer import build_finetune_trainer, finetune

    tmp = tmp_path_factory.mktemp("lora_ours")
    data = tmp / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in PAIRS * 4))
    cfg = load_config(FinetuneConfig, None, [
        f"base={hf_dir}", f"train_loader.data={data}", "train_loader.max_seq_len=64", f"save_folder={tmp / 'run'}",
        "global_train_batch_size=4", "max_duration=2ba", "save_interval=2ba",
        "scheduler.name=constant_with_warmup", "scheduler.t_warmup=0ba", "optimizer.lr=0.05", "loggers.wandb=null",
        "callbacks.speed_monitor.peak_flops=1e11",
        "lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [qkv_proj, gate_up_proj]}"])  # fmt: skip
    trainer = build_finetune_trainer(cfg)
    finetune(trainer, cfg)
    trainer.close()
    return tmp / "run"


@pytest.fixture(scope="module")
def peft_dir(hf_dir, tmp_path_factory):
    """An adapter made and saved by peft on the HF base: q and v (not k) of the fused qkv, and down_proj."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(LlamaForCausalLM.from_pretrained(hf_dir), LoraConfig(
        r=2, lora_alpha=6, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))
    out = tmp_path_factory.mktemp("lora_peft") / "adapter"
    model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def server(hf_dir, ours, peft_dir):
    cfg = ServeConfig(model=str(hf_dir), model_name=MODEL_NAME, device="cpu", max_batch=4,
                      lora=(f"sft={ours}", f"peft={peft_dir}"))
    engine, served = build_ours(cfg)
    with live_server(build_app(engine, served)) as url:
        yield url, engine
    engine.close()


def merged_models(hf_dir, ours, peft_dir, tmp_path) -> dict:
    """Each served name → its merged model in transformers: the base, our merged export, peft's merge."""
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    from llmfoundry_lite.cli.export import export_checkpoint

    export_checkpoint(ours, tmp_path / "sft_merged", 1 << 30)
    peft = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(hf_dir), str(peft_dir)).merge_and_unload()
    return {MODEL_NAME: LlamaForCausalLM.from_pretrained(hf_dir), "sft": LlamaForCausalLM.from_pretrained(
        tmp_path / "sft_merged"), "peft": peft}  # fmt: skip


def hf_greedy(model, ids: list[int], max_new: int) -> list[int]:
    with torch.no_grad():
        out = model.eval().generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=False, eos_token_id=0,
                                    pad_token_id=1)[0, len(ids):].tolist()  # fmt: skip
    return out[: out.index(0)] if 0 in out else out


def complete(url: str, model: str, prompt: str, max_tokens: int = 12) -> httpx.Response:
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    return httpx.post(f"{url}/v1/completions", json=body, timeout=60)


def test_each_adapter_greedy_equals_its_merged_export_in_one_batch(server, tiny, hf_dir, ours, peft_dir, tmp_path):
    url, engine = server
    _, tok = tiny
    merged = merged_models(hf_dir, ours, peft_dir, tmp_path)
    prompts = PROMPTS[:3]
    asks = [(name, p) for p in prompts for name in merged]
    with ThreadPoolExecutor(len(asks)) as pool:  # base and both adapters at once: they share steps
        got = list(pool.map(lambda a: complete(url, *a), asks))
    texts = {}
    for (name, prompt), r in zip(asks, got, strict=True):
        assert r.status_code == 200, r.text
        assert r.json()["model"] == name
        texts[name, prompt] = r.json()["choices"][0]["text"]
        assert texts[name, prompt] == tok.decode(hf_greedy(merged[name], encode_texts(tok, [prompt])[0], 12))
    assert engine.counts["spec_drafted"] > 0  # some steps were slots.verify forwards: adapters apply there too
    for name in ("sft", "peft"):  # the adapters do change the output
        assert any(texts[name, p] != texts[MODEL_NAME, p] for p in prompts), name


def test_requests_for_different_adapters_decode_in_the_same_steps(server):
    """Three requests (base, sft, peft) submitted together finish in about as many engine steps as one:
    one batch serves them all, no adapter waits for another's requests to finish."""
    url, engine = server
    before = engine.counts["steps"]
    asks = [(MODEL_NAME, PROMPTS[3]), ("sft", PROMPTS[3]), ("peft", PROMPTS[3])]
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda a: complete(url, *a, max_tokens=24), asks))
    tokens = [r.json()["usage"]["completion_tokens"] for r in got]
    steps = engine.counts["steps"] - before
    assert all(r.status_code == 200 for r in got)
    assert steps < sum(tokens) - max(tokens), (steps, tokens)  # apart they would take sum(tokens) - 3 steps


def test_a_mixed_batch_computes_each_rows_merged_model(hf_dir, ours, peft_dir, tmp_path):
    """Rows on the base and on two adapters in one prefill and one decode step, in both slot orders:
    each row's logits are its merged model's (the adapters' hooks see rows of every kind at once)."""
    from llmfoundry_lite.finetune.load import load_model
    from llmfoundry_lite.serve.adapters import MultiLora, read_adapters
    from llmfoundry_lite.serve.slots import SlotCache, decode, prefill

    model, tok = load_model(str(hf_dir))
    lora = MultiLora(model, read_adapters({"sft": str(ours), "peft": str(peft_dir)}, model, str(hf_dir)), 3)
    merged = merged_models(hf_dir, ours, peft_dir, tmp_path)
    ids = encode_texts(tok, PROMPTS[:3])
    for order in ([MODEL_NAME, "sft", "peft"], ["peft", MODEL_NAME, "sft"]):
        cache = SlotCache(model, 3)
        for slot, name in enumerate(order):
            lora.assign(slot, lora.index(None if name == MODEL_NAME else name))
        with lora.slot_rows([0, 1, 2]):
            first = prefill(model, cache, ids, [0, 1, 2])
        step = decode(model, cache, [5, 6, 7])
        for slot, name in enumerate(order):
            with torch.no_grad():
                want = merged[name](torch.tensor([ids[slot] + [5 + slot]])).logits[0]
            assert torch.allclose(first[slot], want[-2], atol=1e-4), (order, name)
            assert torch.allclose(step[slot], want[-1], atol=1e-4), (order, name)


def test_models_lists_adapters_and_unknown_model_is_404(server):
    url, _ = server
    cards = httpx.get(f"{url}/v1/models").json()["data"]
    assert [(c["id"], c.get("parent")) for c in cards] == [(MODEL_NAME, None), ("sft", MODEL_NAME),
                                                          ("peft", MODEL_NAME)]  # fmt: skip
    r = complete(url, "nope", "x")
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["param"] == "model" and err["code"] == "model_not_found"
    assert all(name in err["message"] for name in (MODEL_NAME, "sft", "peft"))


def test_bad_lora_values_and_paths_are_clear_errors(hf_dir, ours, peft_dir, tmp_path, capsys):
    for value, message in [("sft", "NAME=PATH"), ("=x", "NAME=PATH")]:
        with pytest.raises(SystemExit):
            parse_args(["--model", str(hf_dir), "--lora", value])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--model", str(hf_dir), "--lora", "a=x", "--lora", "a=y"])
    assert "names 'a' twice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--backend ours only"):
        ServeConfig(model=str(hf_dir), backend="ct2", lora=("a=x",))
    (tmp_path / "empty").mkdir()
    for path, message in [(tmp_path / "missing", "no such file"), (tmp_path / "empty", "not a checkpoint"),
                          (hf_dir, "not a checkpoint")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            build_ours(ServeConfig(model=str(hf_dir), device="cpu", lora=(f"a={path}",)))
    other = tmp_path / "other_base"  # the same shapes, one weight changed: not the base sft was tuned on
    shutil.copytree(hf_dir, other)
    weights = load_file(other / "model.safetensors")
    weights["model.norm.weight"][0] += 1.0
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="was fine-tuned from base .* but the served --model"):
        build_ours(ServeConfig(model=str(other), device="cpu", lora=(f"sft={ours}",)))
    with pytest.raises(ValueError, match="base model's name"):
        build_ours(ServeConfig(model=str(hf_dir), model_name="t", device="cpu", lora=(f"t={peft_dir}",)))
