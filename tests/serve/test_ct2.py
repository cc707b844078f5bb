"""The CTranslate2 backend: conversion agrees with transformers, and the server runs it int8."""

from __future__ import annotations

import pytest
import torch

from tests.serve.conftest import MODEL_NAME, PROMPTS, live_server

pytest.importorskip("ctranslate2")


def test_ct2_greedy_tokens_equal_transformers_and_int8_serves(tiny, hf_dir, tmp_path):
    import openai
    from transformers import AutoModelForCausalLM

    from llmfoundry_lite.serve.app import build_app
    from llmfoundry_lite.serve.ct2 import CT2Engine, prepare_ct2
    from llmfoundry_lite.serve.job import Job, SamplingParams
    from llmfoundry_lite.serve.protocol import ServedModel
    from llmfoundry_lite.tokenizer.io import encode_texts

    _, tok = tiny
    hf = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    # float32 first: quantisation aside, the conversion must compute what transformers computes.
    ct2_dir, ct2_tok, max_len = prepare_ct2(str(hf_dir), str(tmp_path / "f32"), "float32")
    assert max_len == 256
    engine = CT2Engine(ct2_dir, ct2_tok, "float32", max_batch=4, max_waiting=16)
    import queue

    outs = []
    for p in PROMPTS[:3]:
        ids = encode_texts(tok, [p])[0]
        q: queue.Queue = queue.Queue()
        engine.submit(Job(ids, 1, SamplingParams(20), q.put))
        got = []
        while not (d := q.get()).finish_reason:
            got += d.token_ids
        outs.append((ids, got + d.token_ids))
    for ids, got in outs:
        with torch.no_grad():
            want = hf.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False, eos_token_id=0,
                               pad_token_id=1)[0, len(ids):].tolist()  # fmt: skip
        assert got == want[: len(got)] and len(got) == min(len(want), 20)
    # int8 through the HTTP API: runs, batches, answers in OpenAI's shape.
    ct2_dir, ct2_tok, max_len = prepare_ct2(str(hf_dir), str(tmp_path / "int8"), "int8")
    engine = CT2Engine(ct2_dir, ct2_tok, "int8", max_batch=4, max_waiting=16)
    with live_server(build_app(engine, ServedModel(MODEL_NAME, ct2_tok, max_len, 0, 4))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        r = client.completions.create(model=MODEL_NAME, prompt=PROMPTS[0], max_tokens=8, temperature=0, n=2)
        assert len(r.choices) == 2 and r.choices[0].text == r.choices[1].text and r.usage.completion_tokens >= 2
