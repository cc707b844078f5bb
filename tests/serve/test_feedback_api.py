"""``POST /v1/feedback``, completion records, ``--ab`` variants and ``/dashboard`` through the live API,
and a server killed with SIGKILL mid-load losing nothing it acknowledged."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch

from llmfoundry_lite.serve.ab import ABSplit, parse_ab, route
from llmfoundry_lite.serve.app import build_app
from llmfoundry_lite.serve.config import ServeConfig, parse_args
from llmfoundry_lite.serve.feedback import FeedbackRecorder
from llmfoundry_lite.serve.feedback_store import FeedbackStore
from llmfoundry_lite.serve.server import build_ours
from tests.serve.conftest import MODEL_NAME, free_port, live_server, serving

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "jane.doe@corpmail.de"


def complete(url: str, **fields) -> dict:
    r = httpx.post(f"{url}/v1/completions", json={"prompt": "def add(a, b):\n", "max_tokens": 4, **fields}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def feedback(url: str, **fields) -> httpx.Response:
    return httpx.post(f"{url}/v1/feedback", json=fields, timeout=30)


def rows(store: FeedbackStore) -> tuple[dict[str, dict], list[dict]]:
    completions, events = store.tables()
    return {r["id"]: r for r in completions.to_pylist()}, events.to_pylist()


@pytest.fixture(scope="module")
def recorded(tiny, tmp_path_factory):
    """The tiny model served with a SQLite feedback store that keeps (scrubbed) texts: (URL, store)."""
    store = FeedbackStore(f"sqlite:///{tmp_path_factory.mktemp('feedback') / 'feedback.sqlite'}")
    with serving(*tiny, feedback=FeedbackRecorder(store, record_texts=True)) as (url, _, _):
        yield url, store
    store.close()


def test_every_answered_completion_is_recorded_before_its_response_is_sent(recorded):
    url, store = recorded
    body = complete(url, model=MODEL_NAME, user="alice", language="src/main.rs", n=2,
                    prompt=f"# written by {EMAIL}\ndef add(a, b):\n")
    row = rows(store)[0][body["id"]]  # read right after the response: no waiting
    assert (row["model"], row["assignment"], row["language"], row["n_choices"]) == (MODEL_NAME, "default", "rust", 2)
    assert row["prompt_tokens"] == body["usage"]["prompt_tokens"]
    assert row["completion_tokens"] == body["usage"]["completion_tokens"]
    assert row["finish_reasons"] == ",".join(c["finish_reason"] for c in body["choices"])
    assert row["texts"] == [c["text"] for c in body["choices"]]
    assert EMAIL not in row["prompt_text"] and "def add(a, b):" in row["prompt_text"]  # PII-scrubbed
    assert row["user_hash"] not in (None, "alice") and row["latency_ms"] >= row["ttft_ms"] > 0
    assert row["suffix_tokens"] == 0 and row["suffix_text"] is None

    with httpx.stream("POST", f"{url}/v1/completions", json={"prompt": "import os\n", "max_tokens": 5,
                      "stream": True, "suffix": "\nprint(x)\n"}, timeout=30) as r:  # fmt: skip
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    cid = json.loads(events[0])["id"]
    row = rows(store)[0][cid]
    assert row["model"] == MODEL_NAME and row["suffix_tokens"] > 0 and row["suffix_text"] == "\nprint(x)\n"
    assert row["language"] == "python"  # guessed: no language field
    assert row["texts"] == ["".join(json.loads(e)["choices"][0]["text"] for e in events[:-1])]


def test_feedback_events_are_recorded_once_and_bad_ones_name_their_field(recorded):
    url, store = recorded
    cid = complete(url, user="bob", n=2)["id"]
    assert feedback(url, id=cid, index=1, event="shown", user="bob").json()["status"] == "recorded"
    assert feedback(url, id=cid, index=1, event="shown", user="bob").json()["status"] == "duplicate"
    kept = f"return a + b  # {EMAIL}"
    assert feedback(url, id=cid, index=0, event="edited", text=kept, user="bob").status_code == 200
    mine = [e for e in rows(store)[1] if e["completion_id"] == cid]
    assert sorted((e["choice"], e["event"]) for e in mine) == [(0, "edited"), (1, "shown")]
    edited = next(e for e in mine if e["event"] == "edited")
    assert EMAIL not in edited["text"] and edited["text"].startswith("return a + b")
    assert edited["user_hash"] == rows(store)[0][cid]["user_hash"]  # one user, one hash

    cases = [({"id": "cmpl-nope", "event": "shown"}, 404, "id"),
             ({"id": cid, "index": 2, "event": "shown"}, 400, "index"),
             ({"id": cid, "event": "liked"}, 400, "event"),
             ({"id": cid, "event": "accepted", "text": "x"}, 400, "text"),
             ({"id": cid, "event": "edited"}, 400, "text"),
             ({"id": cid, "event": "shown", "score": 5}, 400, "score"),
             ({"id": cid, "index": "0", "event": "shown"}, 400, "index"),
             ({"event": "shown"}, 400, "id")]  # fmt: skip
    for fields, status, param in cases:
        r = feedback(url, **fields)
        assert (r.status_code, r.json()["error"]["param"]) == (status, param), (fields, r.text)
    r = httpx.post(f"{url}/v1/feedback", content=b"{not json", timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"

    page = httpx.get(f"{url}/dashboard", timeout=30)  # the page itself is tested in Chromium (test_dashboard.py)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="acceptance-chart"' in page.text and f'data-variant="{MODEL_NAME}"' in page.text


def test_without_feedback_texts_only_counts_are_kept(tiny, tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'f.sqlite'}")
    with serving(*tiny, feedback=FeedbackRecorder(store, record_texts=False)) as (url, _, _):
        cid = complete(url, prompt=f"# {EMAIL}\nx = [")["id"]
        assert feedback(url, id=cid, event="edited", text="x = [1]").status_code == 200
    row, events = rows(store)[0][cid], rows(store)[1]
    assert (row["prompt_text"], row["texts"], events[0]["text"]) == (None, None, None)
    assert row["completion_tokens"] == 4
    store.close()
    assert EMAIL.encode() not in (tmp_path / "f.sqlite").read_bytes()


def test_a_server_without_a_store_says_so(server):
    url = server[0]
    r = feedback(url, id="cmpl-x", event="shown")
    assert r.status_code == 404 and r.json()["error"]["code"] == "feedback_disabled"
    assert httpx.get(f"{url}/dashboard", timeout=10).status_code == 404


@pytest.fixture(scope="module")
def adapters(hf_dir, tmp_path_factory) -> dict[str, Path]:
    """Two peft adapters of the tiny base (random, nonzero B): the variants beside it."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    out = {}
    for seed, name in enumerate(("a", "b")):
        torch.manual_seed(seed + 10)
        model = get_peft_model(LlamaForCausalLM.from_pretrained(hf_dir), LoraConfig(
            r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        out[name] = tmp_path_factory.mktemp(f"adapter_{name}") / "adapter"
        model.save_pretrained(str(out[name]))
    return out


def test_ab_split_is_sticky_per_user_and_matches_the_weights(hf_dir, adapters, tmp_path):
    weights = {MODEL_NAME: 0.5, "a": 0.3, "b": 0.2}
    cfg = ServeConfig(model=str(hf_dir), model_name=MODEL_NAME, device="cpu", max_batch=8,
                      lora=tuple(f"{n}={p}" for n, p in adapters.items()),
                      ab=tuple(f"{n}={w}" for n, w in weights.items()))  # fmt: skip
    engine, served = build_ours(cfg)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'ab.sqlite'}")
    app = build_app(engine, served, None, FeedbackRecorder(store), cfg.split())
    users = [f"user-{i}" for i in range(200)]
    asks = [(u, k) for k in range(10) for u in users]  # 2,000 requests, 10 per user

    def ask(user_k: tuple[str, int]) -> tuple[str, str, str]:
        user, k = user_k
        extra = {"model": MODEL_NAME} if k % 2 else {}  # naming the default name is split too
        body = complete(url, user=user, max_tokens=1, **extra)
        return user, body["model"], body["id"]

    with live_server(app) as url, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, asks))
        named = complete(url, user=users[0], model="b", max_tokens=1)
        anonymous = complete(url, max_tokens=1)
    engine.close()
    seen = defaultdict(set)
    for user, model, _ in answers:
        seen[user].add(model)
    assert all(len(models) == 1 for models in seen.values()), "a user was served by two variants"
    per_user = Counter(next(iter(models)) for models in seen.values())
    for name, w in weights.items():
        se = math.sqrt(w * (1 - w) / len(users))  # users are the independent units: each one's 10 requests go together
        assert abs(per_user[name] / len(users) - w) < 4 * se, (name, per_user)
    records = rows(store)[0]
    assert all(records[cid]["model"] == model and records[cid]["assignment"] == "ab" for _, model, cid in answers)
    assert (records[named["id"]]["model"], records[named["id"]]["assignment"]) == ("b", "requested")
    assert records[anonymous["id"]]["assignment"] == "ab" and records[anonymous["id"]]["user_hash"] is None
    store.close()


def test_ab_flags_and_routing():
    assert parse_ab(["x=1", "y=0.25"]) == {"x": 1.0, "y": 0.25}
    for bad in (["x"], ["x=0"], ["x=-1"], ["x=abc"], ["=1"], ["x=inf"]):
        with pytest.raises(ValueError, match="NAME=WEIGHT"):
            parse_ab(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_ab(["x=1", "x=2"])
    split = ABSplit({"base": 1.0, "lora": 3.0})
    with pytest.raises(ValueError, match=r"\['nope'\], which this server does not serve"):
        ABSplit({"nope": 1.0}).check_served(["base", "lora"])
    assert route(None, "u", "base", None) == ("base", "default")
    assert route("lora", "u", "base", split) == ("lora", "requested")
    assert route("base", "u", "base", split)[1] == "ab" and route(None, "u", "base", split)[1] == "ab"
    assert {split.assign("u") for _ in range(20)} == {split.assign("u")}  # sticky
    other = ABSplit({"base": 1.0, "lora": 3.0}, "other")  # another experiment: an independent draw per user
    same = sum(split.assign(f"u{i}") == other.assign(f"u{i}") for i in range(4000)) / 4000
    assert same == pytest.approx(0.75**2 + 0.25**2, abs=0.03)
    assert Counter(split.assign(f"u{i}") for i in range(4000))["lora"] / 4000 == pytest.approx(0.75, abs=0.03)
    with pytest.raises(SystemExit):
        parse_args(["--model", "m", "--ab", "m"])
    with pytest.raises(SystemExit):
        parse_args(["--model", "m", "--feedback-db", "none", "--feedback-texts"])
    cfg = parse_args(["--model", "m", "--log-dir", "/tmp/x", "--ab", "m=1", "--ab", "a=2"])
    assert cfg.feedback_url() == "sqlite:////tmp/x/feedback.sqlite" and cfg.split().weights == {"m": 1.0, "a": 2.0}
    assert parse_args(["--model", "m", "--feedback-db", "none"]).feedback_url() is None


def test_sigkill_mid_load_loses_nothing_acknowledged(hf_dir, tmp_path):
    """Clients send completions and feedback as fast as the server answers; SIGKILL lands mid-load.
    Every completion and every event the server acknowledged (a 200 read by its client) is in the
    store afterwards, and a restarted server on the same store takes feedback for the old ids."""
    db = tmp_path / "feedback.sqlite"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--model", str(hf_dir), "--port", str(port),
           "--model-name", MODEL_NAME, "--feedback-db", f"sqlite:///{db}", "--feedback-texts"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env)
    acked_completions, acked_events, stop = set(), set(), threading.Event()

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                try:
                    r = http.post("/v1/completions", json={"prompt": f"x{i} = [", "max_tokens": 2, "user": f"u{i}"})
                    if r.status_code != 200:
                        continue
                    cid = r.json()["id"]
                    acked_completions.add(cid)
                    if http.post("/v1/feedback", json={"id": cid, "event": "accepted"}).status_code == 200:
                        acked_events.add(cid)
                except httpx.HTTPError:  # the kill: what was not acknowledged may be lost
                    return

    try:
        assert _wait_ready(url, proc), (tmp_path / "server.log").read_text()[-3000:]
        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked_events) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
    finally:
        proc.kill()
    assert len(acked_events) >= 150, "the load did not get going"
    store = FeedbackStore(f"sqlite:///{db}")
    records, events = rows(store)
    assert acked_completions <= set(records), f"{len(acked_completions - set(records))} acknowledged completions lost"
    assert acked_events <= {e["completion_id"] for e in events if e["event"] == "accepted"}
    store.close()

    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        assert _wait_ready(url, proc), (tmp_path / "server.log").read_text()[-3000:]
        old = next(iter(acked_events))
        assert feedback(url, id=old, event="accepted").json()["status"] == "duplicate"
        assert feedback(url, id=old, event="shown").json()["status"] == "recorded"
    finally:
        proc.kill()
        proc.wait(10)


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False
