"""A tiny random model, its HF export and a live server on 127.0.0.1 for the serving tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.hf_export import export_hf
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.tokenizer import load_tokenizer

TOKENIZER_DIR = Path(__file__).parents[1] / "assets" / "tokenizer"
MODEL_NAME = "tiny"
PROMPTS = ["def add(a, b):\n", "import os\n\nclass Config:\n    def __init__(self", "for i in range(10):",
           "x = [", "# sort a list of numbers\ndef sort_numbers(xs):\n    return", "while True:\n    line = input()"]


@pytest.fixture(scope="module")
def tiny():
    """(model, tokenizer): 2 layers, GQA, 256-token context. A wide init spreads the logits so greedy
    choices are not near-ties that float rounding could flip between equal computations."""
    torch.set_num_threads(1)  # tiny matrices: extra threads only add start-up cost on a shared machine
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=tokenizer.get_vocab_size(),
                      max_seq_len=256, init_std=0.3)
    return Transformer(cfg).eval(), tokenizer


@pytest.fixture(scope="module")
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
