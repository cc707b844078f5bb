"""A tiny random model, its HF export and live servers on 127.0.0.1 for the serving tests: one shared
server for the whole session (``server``, ``client``), and ``serving`` for tests that need their own settings."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from fastapi import FastAPI

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.hf_export import export_hf
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.serve.app import build_app
from llmfoundry_lite.serve.engine import ContinuousEngine
from llmfoundry_lite.serve.feedback import FeedbackRecorder
from llmfoundry_lite.serve.limits import OpsSettings
from llmfoundry_lite.serve.protocol import ServedModel
from llmfoundry_lite.tokenizer import load_tokenizer

TOKENIZER_DIR = Path(__file__).parents[1] / "assets" / "tokenizer"
MODEL_NAME = "tiny"
PROMPTS = ["def add(a, b):\n", "import os\n\nclass Config:\n    def __init__(self", "for i in range(10):",
           "x = [", "# sort a list of numbers\ndef sort_numbers(xs):\n    return", "while True:\n    line = input()"]


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer): 2 layers, GQA, 256-token context. A wide init spreads the logits so greedy
    choices are not near-ties that float rounding could flip between equal computations."""
    torch.set_num_threads(1)  # tiny matrices: extra threads only add start-up cost on a shared machine
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=tokenizer.get_vocab_size(),
                      max_seq_len=256, init_std=0.3)
    return Transformer(cfg).eval(), tokenizer


@pytest.fixture(scope="session")
def hf_dir(tiny, tmp_path_factory) -> Path:
    model, tokenizer = tiny
    return export_hf(model, tokenizer, tmp_path_factory.mktemp("serving") / MODEL_NAME)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free 127.0.0.1 port in a thread; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serving(model, tokenizer, max_batch: int = 8, max_waiting: int = 256, ops: OpsSettings | None = None,
            feedback: FeedbackRecorder | None = None) -> Iterator[tuple[str, ContinuousEngine, FastAPI]]:
    """``model`` behind a ``ContinuousEngine`` and the app, live on 127.0.0.1: (base URL, engine, app)."""
    engine = ContinuousEngine(model, tokenizer, max_batch=max_batch, max_waiting=max_waiting)
    served = ServedModel(MODEL_NAME, tokenizer, model.cfg.max_seq_len, engine.eos_id, max_batch)
    app = build_app(engine, served, ops, feedback)
    try:
        with live_server(app) as url:
            yield url, engine, app
    finally:
        engine.close()


@pytest.fixture(scope="session")
def server(tiny) -> Iterator[tuple[str, ContinuousEngine, FastAPI]]:
    """The tiny model served with default settings, shared by every test that needs no settings of its own."""
    with serving(*tiny) as pair:
        yield pair


@pytest.fixture(scope="session")
def client(server):
    import openai

    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="unused", max_retries=0)
