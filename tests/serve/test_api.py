"""The completions API through the official ``openai`` client against a live server on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures as cf

import httpx
import openai
import pytest
import torch
from transformers import AutoModelForCausalLM

from llmfoundry_lite.models.generate import generate
from llmfoundry_lite.tokenizer.io import encode_texts
from tests.serve.conftest import MODEL_NAME, PROMPTS


@pytest.fixture(scope="module")
def hf_model(hf_dir):
    return AutoModelForCausalLM.from_pretrained(hf_dir).eval()


def hf_greedy(hf_model, ids: list[int], max_new: int) -> list[int]:
    with torch.no_grad():
        out = hf_model.generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=False, eos_token_id=0,
                                pad_token_id=1)[0, len(ids):].tolist()  # fmt: skip
    return out[: out.index(0) + 1] if 0 in out else out


def test_greedy_equals_transformers_generate(client, tiny, hf_model):
    _, tok = tiny
    for prompt in PROMPTS[:3]:
        ids = encode_texts(tok, [prompt])[0]
        want = hf_greedy(hf_model, ids, 24)
        got = client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=24, temperature=0)
        assert got.choices[0].text == tok.decode([t for t in want if t != 0])
        assert got.usage.completion_tokens == len(want) and got.usage.prompt_tokens == len(ids)
        assert got.usage.total_tokens == len(ids) + len(want)
        assert got.choices[0].finish_reason == ("stop" if want[-1] == 0 else "length")


def test_suffix_is_the_psm_prompt_transformers_reads_from_text(client, tiny, hf_dir, hf_model):
    from transformers import AutoTokenizer

    _, tok = tiny
    prefix, suffix = "def area(r):\n    return ", "\n\nprint(area(2))\n"
    hf_ids = AutoTokenizer.from_pretrained(hf_dir)(f"<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>")["input_ids"]
    assert hf_ids[0] == tok.token_to_id("<fim_prefix>") and hf_ids[-1] == tok.token_to_id("<fim_middle>")
    want = hf_greedy(hf_model, hf_ids, 20)
    # A middle also ends at <fim_pad> or a sentinel (serve/fim.py); this random model emits <fim_pad> early.
    ends = {tok.token_to_id(t) for t in ("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>")}
    want = want[: next((i + 1 for i, t in enumerate(want) if t in ends), len(want))]
    got = client.completions.create(model=MODEL_NAME, prompt=[prefix], suffix=suffix, max_tokens=20, temperature=0)
    assert got.usage.prompt_tokens == len(hf_ids) and got.usage.completion_tokens == len(want)
    assert got.choices[0].text == tok.decode([t for t in want if t not in ends])
    assert got.choices[0].finish_reason == ("stop" if want[-1] in ends else "length")


def test_stream_equals_whole_and_ends_with_done(server, client):
    kw = dict(model=MODEL_NAME, prompt=PROMPTS[1], max_tokens=30, temperature=0)
    whole = client.completions.create(**kw).choices[0]
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 30
    raw = httpx.post(f"{server[0]}/v1/completions", json={**kw, "stream": True}).text
    assert raw.endswith("data: [DONE]\n\n") and all(e.startswith("data: ") for e in raw.split("\n\n") if e)


def test_stop_sequence_cuts_text_and_is_not_returned(client):
    kw = dict(model=MODEL_NAME, prompt=PROMPTS[0], max_tokens=40, temperature=0)
    full = client.completions.create(**kw).choices[0].text
    stop = full[10:13]  # occurs in the greedy text, so greedy decoding must stop before it
    cut = full[: full.find(stop)]
    got = client.completions.create(stop=[stop, "never-appears"], **kw).choices[0]
    assert got.text == cut and got.finish_reason == "stop"
    streamed = client.completions.create(stop=stop, stream=True, **kw)
    assert "".join(c.choices[0].text for c in streamed) == cut  # held-back text never leaks the stop


def test_n_choices_and_seeded_sampling(client):
    kw = dict(model=MODEL_NAME, prompt=PROMPTS[2], max_tokens=12, temperature=1.0, top_p=0.9, n=3, seed=7)
    a, b = client.completions.create(**kw), client.completions.create(**kw)
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert [c.text for c in a.choices] == [c.text for c in b.choices]  # same seed, same texts
    assert len({c.text for c in a.choices}) > 1  # each choice samples on its own
    greedy = client.completions.create(**{**kw, "temperature": 0, "seed": None})
    assert len({c.text for c in greedy.choices}) == 1


@pytest.mark.parametrize("body, param", [
    ({"model": MODEL_NAME}, "prompt"),
    ({"model": MODEL_NAME, "prompt": "x", "max_tokens": -1}, "max_tokens"),
    ({"model": MODEL_NAME, "prompt": "x", "max_tokens": 100000}, "max_tokens"),
    ({"model": MODEL_NAME, "prompt": "x " * 200, "max_tokens": 100}, "prompt"),
    ({"model": MODEL_NAME, "prompt": "x", "frobnicate": 1}, "frobnicate"),
    ({"model": MODEL_NAME, "prompt": "x", "max_tokens": "16"}, "max_tokens"),
    ({"model": MODEL_NAME, "prompt": "x", "temperature": 5}, "temperature"),
    ({"model": MODEL_NAME, "prompt": "x", "stop": ["a", ""]}, "stop"),
    ({"model": MODEL_NAME, "prompt": "x", "n": 99}, "n"),
    ({"model": MODEL_NAME, "prompt": "x", "echo": "yes"}, "echo"),
    ({"model": MODEL_NAME, "prompt": "x", "logprobs": 99}, "logprobs"),
    ({"model": MODEL_NAME, "prompt": []}, "prompt"),
])  # fmt: skip
def test_bad_requests_are_400_naming_the_field(server, body, param):
    r = httpx.post(f"{server[0]}/v1/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["message"]


def test_malformed_json_unknown_model_and_client_errors(server, client):
    r = httpx.post(f"{server[0]}/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="other", prompt="x")
    with pytest.raises(openai.BadRequestError, match="context length") as e:
        client.completions.create(model=MODEL_NAME, prompt="y " * 300)
    assert e.value.body["param"] == "prompt" and e.value.body["code"] == "context_length_exceeded"
    assert client.models.list().data[0].id == MODEL_NAME
    assert client.completions.create(model=MODEL_NAME, prompt="ok", max_tokens=2).usage.completion_tokens >= 1


def test_client_leaving_mid_stream_frees_its_slot(server):
    url, engine, _ = server
    before = engine.counts["cancelled"]
    body = {"model": MODEL_NAME, "prompt": "a", "max_tokens": 250, "temperature": 1.0, "stream": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=body) as r:
        next(r.iter_lines())  # first chunk arrived: the job holds a slot
    for _ in range(200):
        health = httpx.get(f"{url}/health").json()
        if health["running"] == 0 and engine.counts["cancelled"] > before:
            break
        httpx.get(f"{url}/health")  # a short wait that also proves the server still answers
    assert health["running"] == 0 and engine.counts["cancelled"] == before + 1


def test_64_concurrent_requests_match_sequential_greedy(client, tiny):
    model, tok = tiny
    prompts = [PROMPTS[i % len(PROMPTS)] + " " * (i // len(PROMPTS)) for i in range(64)]  # 64 distinct lengths
    want = []
    for p in prompts:
        new = generate(model, torch.tensor([encode_texts(tok, [p])[0]]), 16, eos_id=0)[0]
        want.append(tok.decode(new))

    def ask(p: str) -> str:
        return client.completions.create(model=MODEL_NAME, prompt=p, max_tokens=16, temperature=0).choices[0].text

    with cf.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(ask, prompts, timeout=120))
    assert got == want
