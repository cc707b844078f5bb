"""What evaluation harnesses send: token-id prompts, lists of prompts, echo with logprobs, max_tokens=0,
long stop lists; scores checked against transformers' forward on the HF export."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM

from llmfoundry_lite.tokenizer.io import encode_texts
from tests.serve.conftest import MODEL_NAME, PROMPTS

TOL = 1e-4


@pytest.fixture(scope="module")
def url(server) -> str:
    return server[0]


@pytest.fixture(scope="module")
def hf_logp(hf_dir):
    """ids → (T, V) log-probabilities of the next token after each position, from transformers."""
    model = AutoModelForCausalLM.from_pretrained(hf_dir).eval()

    def logp(ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0].float().log_softmax(-1)

    return logp


def piece_names(tok) -> list[str]:
    """How ``logprobs`` names each token id (imported here so that the HTTP tests fail on behaviour,
    not on an import, where this name does not exist)."""
    from llmfoundry_lite.serve.choice import decode_table, token_pieces

    return token_pieces(tok, decode_table(tok))


def post(server: str, **body) -> httpx.Response:
    return httpx.post(f"{server}/v1/completions", json={"model": MODEL_NAME, **body}, timeout=60)


def check_offsets(lp, text: str, tok) -> None:
    """Offsets rise from 0 and each whole-character token's text sits at its offset (special tokens
    decode to nothing; ``bytes:`` tokens, parts of characters, are checked in the split test)."""
    offsets = lp.text_offset
    specials = {t.content for t in tok.get_added_tokens_decoder().values()}
    assert offsets[0] == 0 and offsets == sorted(offsets) and offsets[-1] <= len(text)
    for token, start, end in zip(lp.tokens, offsets, [*offsets[1:], len(text)], strict=True):
        if not token.startswith("bytes:"):
            assert text[start:end] == ("" if token in specials else token)


def test_token_id_prompts_and_prompt_lists_equal_string_prompts(client, tiny):
    _, tok = tiny
    prompts = PROMPTS[:3]
    ids = encode_texts(tok, prompts)
    single = [client.completions.create(model=MODEL_NAME, prompt=p, max_tokens=8, temperature=0) for p in prompts]
    want = [r.choices[0].text for r in single]
    by_ids = client.completions.create(model=MODEL_NAME, prompt=ids[0], max_tokens=8, temperature=0)
    assert by_ids.choices[0].text == want[0]
    for prompt in (prompts, ids):  # k prompts, n choices: k·n choices, index = prompt·n + j
        got = client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=8, temperature=0, n=2)
        assert [c.index for c in got.choices] == list(range(6))
        assert [c.text for c in got.choices] == [w for w in want for _ in range(2)]
        assert got.usage.prompt_tokens == sum(len(i) for i in ids)
        assert got.usage.completion_tokens == 2 * sum(r.usage.completion_tokens for r in single)


def test_echo_max_tokens_0_scores_the_prompt_as_transformers_does(client, tiny, hf_logp):
    _, tok = tiny
    ids = encode_texts(tok, PROMPTS[:3])
    got = client.completions.create(model=MODEL_NAME, prompt=ids, echo=True, logprobs=3, max_tokens=0)
    pieces = piece_names(tok)
    assert got.usage.completion_tokens == 0 and got.usage.prompt_tokens == sum(len(i) for i in ids)
    for choice, prompt, text in zip(got.choices, ids, PROMPTS[:3], strict=True):
        lp = choice.logprobs
        assert choice.text == text and choice.finish_reason == "length"
        assert len(lp.tokens) == len(prompt) and "".join(lp.tokens) == text
        assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
        ref = hf_logp(prompt)
        want = ref[torch.arange(len(prompt) - 1), torch.tensor(prompt[1:])]
        assert torch.allclose(torch.tensor(lp.token_logprobs[1:]), want, atol=TOL)
        for t, top in enumerate(lp.top_logprobs[1:]):
            best = ref[t].topk(3)
            names = [pieces[i] for i in best.indices.tolist()]
            assert all(abs(top[name] - v) < TOL for name, v in zip(names, best.values.tolist(), strict=True))
            assert len(top) in (3, 4) and top[lp.tokens[t + 1]] == lp.token_logprobs[t + 1]
        check_offsets(lp, choice.text, tok)
    one = client.completions.create(model=MODEL_NAME, prompt=ids[0][:1], echo=True, logprobs=1, max_tokens=0)
    assert one.choices[0].logprobs.token_logprobs == [None] and one.choices[0].text == tok.decode(ids[0][:1])


def test_completion_logprobs_match_transformers_and_echo_prepends_the_prompt(client, tiny, hf_logp):
    _, tok = tiny
    prompt = PROMPTS[4]
    ids = encode_texts(tok, [prompt])[0]
    plain = client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=6, temperature=0, logprobs=2)
    lp = plain.choices[0].logprobs
    id_of = {piece: i for i, piece in enumerate(piece_names(tok))}
    generated = [id_of[t] for t in lp.tokens]
    assert len(generated) == plain.usage.completion_tokens
    ref = hf_logp(ids + generated)
    want = ref[torch.arange(len(ids) - 1, len(ids) + len(generated) - 1), torch.tensor(generated)]
    assert torch.allclose(torch.tensor(lp.token_logprobs), want, atol=TOL)
    assert all(top[t] == max(top.values()) for t, top in zip(lp.tokens, lp.top_logprobs, strict=True))  # greedy
    check_offsets(lp, plain.choices[0].text, tok)
    echoed = client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=6, temperature=0, logprobs=2,
                                       echo=True)  # fmt: skip
    elp = echoed.choices[0].logprobs
    assert echoed.choices[0].text == prompt + plain.choices[0].text
    assert elp.tokens[len(ids) :] == lp.tokens
    assert torch.allclose(torch.tensor(elp.token_logprobs[len(ids) :]), torch.tensor(lp.token_logprobs), atol=TOL)
    assert elp.text_offset[len(ids) :] == [o + len(prompt) for o in lp.text_offset]


def test_text_offsets_stay_consistent_across_split_characters(url, tiny):
    _, tok = tiny
    prompt = "# 円周率 π ≈ 3.14 — ünïcødé\ndef f():"
    ids = encode_texts(tok, [prompt])[0]
    body = post(url, prompt=prompt, echo=True, logprobs=0, max_tokens=4, temperature=0).json()
    choice = body["choices"][0]
    lp, text = choice["logprobs"], choice["text"]
    assert text.startswith(prompt) and len(lp["tokens"]) == len(ids) + body["usage"]["completion_tokens"]
    split = [t for t in lp["tokens"] if t.startswith("bytes:")]
    assert split, "the prompt should hold tokens that are parts of characters"
    starts = [*lp["text_offset"], len(text)]
    pieces = [text[a:b] for a, b in zip(starts, starts[1:], strict=False)]
    assert "".join(pieces) == text  # each character belongs to the token that completes it
    assert all(len(top) == 1 for top in lp["top_logprobs"][1:])  # logprobs=0: the chosen token only


def test_stream_carries_each_tokens_logprobs(url):
    body = {"prompt": PROMPTS[1], "max_tokens": 10, "temperature": 0, "logprobs": 1, "echo": True}
    whole = post(url, **body).json()["choices"][0]
    tokens, offsets, text = [], [], ""
    with httpx.stream("POST", f"{url}/v1/completions", json={"model": MODEL_NAME, **body, "stream": True},
                      timeout=60) as r:  # fmt: skip
        for line in r.iter_lines():
            if line.startswith("data: {"):
                choice = json.loads(line[6:])["choices"][0]
                text += choice["text"]
                tokens += choice["logprobs"]["tokens"]
                offsets += choice["logprobs"]["text_offset"]
    assert text == whole["text"]
    assert tokens == whole["logprobs"]["tokens"] and offsets == whole["logprobs"]["text_offset"]


def test_what_lm_evaluation_harness_sends(url, tiny, hf_logp):
    """Its loglikelihood request: token ids of context + continuation, echo, max_tokens 1, logprobs 1;
    it sums ``token_logprobs[ctxlen:-1]`` and calls the continuation greedy when each equals its top."""
    _, tok = tiny
    context, continuation = encode_texts(tok, ["def add(a, b):\n   ", " return a + b"])
    inputs = [context + continuation, context]
    out = post(url, prompt=inputs, echo=True, max_tokens=1, logprobs=1, temperature=0, seed=1234).json()
    ref = hf_logp(context + continuation)
    want = ref[torch.arange(len(context) - 1, len(inputs[0]) - 1), torch.tensor(continuation)].sum().item()
    first = out["choices"][0]["logprobs"]
    assert abs(sum(first["token_logprobs"][len(context) : -1]) - want) < TOL
    assert len(first["tokens"]) == len(inputs[0]) + 1 and len(out["choices"][1]["logprobs"]["tokens"]) == len(context) + 1


def test_a_stop_list_of_ten_works(client):
    free = client.completions.create(model=MODEL_NAME, prompt=PROMPTS[0], max_tokens=24, temperature=0).choices[0]
    assert len(free.text) > 6
    stops = [f"never-{i}" for i in range(9)] + [free.text[4:6]]
    cut = client.completions.create(model=MODEL_NAME, prompt=PROMPTS[0], max_tokens=24, temperature=0, stop=stops)
    assert cut.choices[0].text == free.text[: free.text.index(free.text[4:6])]
    assert cut.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"prompt": [[5, 10**9]]}, "prompt", "vocabulary"),
        ({"prompt": []}, "prompt", "empty"),
        ({"prompt": [[]]}, "prompt", "empty"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens", "echo"),
        ({"prompt": "x", "logprobs": 21}, "logprobs", "0..20"),
        ({"prompt": [1, 2], "suffix": "x"}, "suffix", "text prompt"),
    ],
)
def test_bad_prompts_and_scoring_fields_are_400s_naming_the_field(url, body, param, says):
    r = post(url, **body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and says in r.json()["error"]["message"]
