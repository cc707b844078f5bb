"""Operating the server: disconnects, limits, time limits, engine death, auth, metrics, logs, SIGTERM.

A "slow" model (2048-token context, a seed whose greedy text has no end-of-text for 1,900
tokens) keeps a request decoding for seconds, so what happens *during* a request is observable.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.hf_export import export_hf
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.serve.auth import warn_if_open
from llmfoundry_lite.serve.limits import OpsSettings
from tests.serve.conftest import MODEL_NAME, free_port, serving

ROOT = Path(__file__).resolve().parents[2]
LONG_PROMPT = "def add(a, b):\n"
"""With the slow model's seed, greedy decoding of this prompt runs 1,900 tokens without end-of-text."""


@pytest.fixture(scope="module")
def slow(tiny):
    _, tokenizer = tiny
    torch.manual_seed(2)
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=tokenizer.get_vocab_size(),
                      max_seq_len=2048, init_std=0.3)  # fmt: skip
    return Transformer(cfg).eval(), tokenizer


@pytest.fixture(scope="module")
def slow_server(slow):
    with serving(*slow, max_batch=4) as pair:
        yield pair


def body(max_tokens: int, stream: bool = False, prompt: str = LONG_PROMPT) -> dict:
    return {"model": MODEL_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": stream}


def wait_until(cond, timeout: float = 20.0, step: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def metrics(url: str, headers: dict | None = None) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", headers=headers).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name + json.dumps(s.labels, sort_keys=True) if s.labels else s.name] = s.value
    return out


def test_non_streamed_client_that_leaves_frees_its_slot_within_steps(slow_server):
    url, engine, _ = slow_server
    port = int(url.rsplit(":", 1)[1])
    before = engine.counts["cancelled"]
    payload = json.dumps(body(1800)).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(payload) + payload)  # fmt: skip
    assert wait_until(lambda: engine.stats()["running"] == 1)
    time.sleep(0.3)
    sock.close()
    steps_at_close = engine.counts["steps"]
    assert wait_until(lambda: engine.stats()["running"] == 0), "the job kept its slot"
    after = engine.counts["steps"] - steps_at_close
    assert after <= 20, f"{after} decode steps ran after the client left"
    assert engine.counts["cancelled"] == before + 1
    assert wait_until(lambda: metrics(url).get('llmfoundry_cancellations_total{"reason": "client_disconnected"}') == 1,
                      timeout=5, step=0.05)  # fmt: skip


def test_huge_prompts_are_refused_fast_while_a_stream_keeps_flowing(slow_server):
    url, engine, _ = slow_server
    events: list[float] = []
    finished = threading.Event()

    def stream() -> None:
        with httpx.stream("POST", f"{url}/v1/completions", json=body(700, stream=True), timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(time.monotonic())
        finished.set()

    thread = threading.Thread(target=stream)
    thread.start()
    assert wait_until(lambda: len(events) >= 3)
    big = json.dumps({**body(8), "prompt": "x = 1\n" * 900_000})  # 5.4M characters, 6.3 MB of JSON: over 4 MiB
    t = time.monotonic()
    r = httpx.post(f"{url}/v1/completions", content=big, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert time.monotonic() - t < 1.0
    long = {**body(8), "prompt": "y = [" * 600_000}  # 3 MB, under the cap: refused by its length
    t = time.monotonic()
    r = httpx.post(f"{url}/v1/completions", json=long, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert "characters" in r.json()["error"]["message"] and time.monotonic() - t < 1.0

    def chunked():  # no Content-Length: the cap applies while reading
        for _ in range(5):
            yield b" " * 2**20

    r = httpx.post(f"{url}/v1/completions", content=chunked(), timeout=30)
    assert r.status_code == 413
    still_streaming = not finished.is_set()
    thread.join(60)
    assert still_streaming, "the stream ended before the big requests were answered: nothing was tested"
    gaps = [b - a for a, b in zip(events, events[1:], strict=False)]
    assert max(gaps) < 1.0, f"the stream stalled {max(gaps):.2f} s"


def test_request_time_limit_cancels_the_job(slow):
    with serving(*slow, max_batch=4, ops=OpsSettings(request_timeout_s=0.5)) as (url, engine, _):
        t = time.monotonic()
        r = httpx.post(f"{url}/v1/completions", json=body(1800), timeout=30)
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        assert time.monotonic() - t < 3.0
        with httpx.stream("POST", f"{url}/v1/completions", json=body(1800, stream=True), timeout=30) as s:
            last = [line for line in s.iter_lines() if line.startswith("data: ")][-1]
        assert json.loads(last[6:])["error"]["code"] == "timeout"
        assert wait_until(lambda: engine.stats()["running"] == 0)
        assert engine.counts["cancelled"] == 2
        assert metrics(url)['llmfoundry_cancellations_total{"reason": "timeout"}'] == 2


class EngineFault(BaseException):
    """Not an ``Exception``: a step's own error handling does not catch it, so the engine thread ends."""


def test_engine_thread_death_fails_waiting_requests_and_health(tiny):
    go, entered = threading.Event(), threading.Event()

    def fatal_step() -> None:
        entered.set()
        go.wait(30)
        raise EngineFault("device lost")

    with serving(*tiny, max_batch=1, ops=OpsSettings(stuck_after_s=0.2)) as (url, engine, _), \
            httpx.Client(base_url=url, timeout=15) as c, httpx.Client(base_url=url, timeout=15) as c2:  # fmt: skip
        engine._decode_step = fatal_step
        results = {}
        first = threading.Thread(target=lambda: results.update(a=c.post("/v1/completions", json=body(50))))
        first.start()
        assert entered.wait(10)
        second = threading.Thread(target=lambda: results.update(b=c2.post("/v1/completions", json=body(50))))
        second.start()  # max_batch=1: this one waits in the queue
        assert wait_until(lambda: engine.stats()["waiting"] == 1)
        time.sleep(0.3)
        h = httpx.get(f"{url}/health")
        assert h.status_code == 503 and "no step finished" in h.json()["reason"]
        go.set()
        first.join(15)
        second.join(15)
        assert results["a"].status_code >= 500 and results["b"].status_code >= 500
        assert "device lost" in results["b"].json()["error"]["message"]
        r = httpx.post(f"{url}/v1/completions", json=body(5), timeout=5)
        assert r.status_code == 503 and r.json()["error"]["code"] == "engine_dead"
        h = httpx.get(f"{url}/health")
        assert h.status_code == 503 and "EngineFault" in h.json()["reason"]


def test_api_key_guards_every_route_but_health(tiny, caplog):
    with serving(*tiny, ops=OpsSettings(api_key="s3cret")) as (url, _, _):
        assert httpx.get(f"{url}/health").status_code == 200
        for path in ("/v1/models", "/ready", "/metrics", "/nowhere"):
            r = httpx.get(f"{url}{path}")
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", path
            assert r.headers["www-authenticate"].startswith("Bearer")
        r = httpx.post(f"{url}/v1/completions", json=body(4), headers={"Authorization": "Bearer s3cre"})
        assert r.status_code == 401 and "invalid API key" in r.json()["error"]["message"]
        good = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        assert good.completions.create(model=MODEL_NAME, prompt="x = ", max_tokens=3, temperature=0).choices
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
        assert metrics(url, {"Authorization": "Bearer s3cret"})['llmfoundry_errors_total{"code": "invalid_api_key", '
                                                                 '"status": "401"}'] == 6  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="llmfoundry_lite.serve.auth"):
        assert warn_if_open("0.0.0.0", None) and "without an API key" in caplog.text
        assert not warn_if_open("0.0.0.0", "k") and not warn_if_open("127.0.0.1", None)
        assert not warn_if_open("localhost", None) and not warn_if_open("::1", None)


def test_metrics_readiness_and_one_log_line_per_request(tiny, caplog):
    secret = "def very_private_function():\n"
    with serving(*tiny) as (url, _, app), caplog.at_level(logging.INFO, logger="llmfoundry_lite.serve.requests"):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        got = [client.completions.create(model=MODEL_NAME, prompt=secret, max_tokens=7, temperature=0)
               for _ in range(3)]  # fmt: skip
        chunks = list(client.completions.create(model=MODEL_NAME, prompt=secret, max_tokens=5, temperature=0,
                                                stream=True))  # fmt: skip
        assert chunks
        assert httpx.post(f"{url}/v1/completions", json={**body(4), "max_tokens": "4"}).status_code == 400
        m = metrics(url)
        assert httpx.get(f"{url}/ready").json() == {"status": "ready", "model": MODEL_NAME}
        app.state.draining = True
        assert httpx.get(f"{url}/ready").status_code == 503
    lab = '{"model": "tiny"}'
    assert m["llmfoundry_request_latency_seconds_count" + lab] == 4
    assert m["llmfoundry_time_to_first_token_seconds_count" + lab] == 4
    assert m["llmfoundry_generation_tokens_total" + lab] == sum(g.usage.completion_tokens for g in got) + 5
    assert m["llmfoundry_prompt_tokens_total" + lab] == 4 * got[0].usage.prompt_tokens
    assert m['llmfoundry_errors_total{"code": "none", "status": "400"}'] == 1
    for name in ("llmfoundry_queue_depth", "llmfoundry_running_sequences", "llmfoundry_kv_slots_in_use",
                 "llmfoundry_kv_slots", "llmfoundry_engine_steps_total"):  # fmt: skip
        assert name in m, name
    lines = [r.getMessage() for r in caplog.records if r.name == "llmfoundry_lite.serve.requests"]
    assert len(lines) == 4 and all("outcome=ok" in line for line in lines)
    assert f"{got[0].id} model=tiny prompt_tokens={got[0].usage.prompt_tokens} completion_tokens=7" in lines[0]
    assert "latency_ms=" in lines[0] and "finish=length" in lines[0]
    assert not any("very_private" in line or got[0].choices[0].text in line for line in lines)
    with serving(*tiny, ops=OpsSettings(log_prompts=True)) as (url, _, _), caplog.at_level(logging.INFO, logger="llmfoundry_lite.serve.requests"):
        one = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0).completions.create(
            model=MODEL_NAME, prompt=secret, max_tokens=7, temperature=0)
    asked = [r.getMessage() for r in caplog.records if r.name == "llmfoundry_lite.serve.requests"][-1]
    assert repr(secret) in asked and repr(one.choices[0].text) in asked


def test_sigterm_drains_in_flight_requests_then_exits(slow, tmp_path):
    model, tokenizer = slow
    hf = export_hf(model, tokenizer, tmp_path / "slow")
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve.py"), "--model", str(hf), "--port",
                             str(port), "--model-name", MODEL_NAME, "--speculative", "none", "--drain-timeout-s", "60"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _ready(url), timeout=120, step=0.2), "the server did not become ready"
        texts, finish = [], []
        with httpx.stream("POST", f"{url}/v1/completions", json=body(500, stream=True), timeout=60) as r:
            lines = r.iter_lines()
            for line in lines:
                if line.startswith("data: {"):
                    texts.append(json.loads(line[6:])["choices"][0]["text"])
                    break
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(httpx.ConnectError):  # no new connections while draining
                httpx.get(f"{url}/health", timeout=2)
            for line in lines:
                if line.startswith("data: {"):
                    choice = json.loads(line[6:])["choices"][0]
                    texts.append(choice["text"])
                    finish.append(choice["finish_reason"])
        assert finish[-1] == "length", "the in-flight stream was cut"
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    log = proc.stdout.read()
    assert "draining in-flight requests" in log and "completion_tokens=500" in log


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
