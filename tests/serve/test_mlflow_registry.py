"""Models from the MLflow registry: an HF export registered in a SQLite tracking store (artifacts in a local
folder) is served from ``models:/NAME/VERSION`` and ``models:/NAME@alias`` and answers as the directory does.

MLflow's imports and its store's schema set-up are slow, so the module registers once.
"""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from llmfoundry_lite.serve.app import build_app
from llmfoundry_lite.serve.config import ServeConfig
from tests.serve.conftest import PROMPTS, live_server

pytest.importorskip("sqlalchemy")  # the SQL tracking store (requirements.in)
NAME = "tiny-code"


@pytest.fixture(scope="module")
def registry(hf_dir, tmp_path_factory):
    """A SQLite store with ``hf_dir`` registered twice (versions 1 and 2), alias ``champion`` on version 1."""
    import mlflow

    from llmfoundry_lite.models.mlflow_registry import register_export

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)  # what fetch_model reads, as scripts/serve.py would
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)  # no process-wide MLflow state
        client.create_experiment("exports", artifact_location=str(root / "artifacts"))
        first = register_export(hf_dir, NAME, uri, "exports", {"source": "conftest"})
        second = register_export(hf_dir, NAME, uri, "exports")
        assert "MLFLOW_EXPERIMENT_ID" not in os.environ, "registering leaked its experiment into later runs"
        client.set_registered_model_alias(NAME, "champion", "1")
        yield uri, first, second


def _greedy(cfg: ServeConfig) -> tuple[str, list[str]]:
    """The served model's name and its greedy completions of three prompts."""
    from llmfoundry_lite.serve.server import build_ours, fetch_model

    engine, served = build_ours(fetch_model(cfg))
    with live_server(build_app(engine, served)) as url:
        texts = []
        for prompt in PROMPTS[:3]:
            body = {"model": served.name, "prompt": prompt, "max_tokens": 12, "temperature": 0}
            r = httpx.post(f"{url}/v1/completions", json=body, timeout=30)
            assert r.status_code == 200, r.text
            texts.append(r.json()["choices"][0]["text"])
    engine.close()
    return served.name, texts


def test_export_registers_new_versions_with_tokenizer_and_generation_config(registry, hf_dir):
    from llmfoundry_lite.models.mlflow_registry import fetch_registered

    _, first, second = registry
    assert (first, second) == (f"models:/{NAME}/1", f"models:/{NAME}/2")
    fetched = fetch_registered(f"models:/{NAME}@champion")
    assert (fetched.name, fetched.version) == (NAME, "1")
    for f in hf_dir.iterdir():  # weights, config, tokenizer files and generation_config.json, byte for byte
        assert hashlib.sha256((fetched.path / f.name).read_bytes()).digest() == hashlib.sha256(f.read_bytes()).digest()


@pytest.fixture(scope="module")
def direct(hf_dir) -> list[str]:
    name, texts = _greedy(ServeConfig(model=str(hf_dir), device="cpu"))
    assert name == hf_dir.name and any(texts)
    return texts


@pytest.mark.parametrize("uri", [f"models:/{NAME}@champion", f"models:/{NAME}/1"])
def test_registered_model_serves_like_its_directory(registry, direct, uri):
    name, texts = _greedy(ServeConfig(model=uri, device="cpu"))
    assert name == NAME and texts == direct


def test_registry_errors_name_what_is_missing(registry):
    from llmfoundry_lite.cli.export import parse_args
    from llmfoundry_lite.models.mlflow_registry import fetch_registered

    with pytest.raises(ValueError, match="models:/NAME/VERSION or models:/NAME@ALIAS"):
        fetch_registered(f"models:/{NAME}/latest-ish")
    with pytest.raises(ValueError, match=f"models:/{NAME}/7: .*"):
        fetch_registered(f"models:/{NAME}/7")
    with pytest.raises(ValueError, match=f"models:/{NAME}@staging: .*staging"):
        fetch_registered(f"models:/{NAME}@staging")
    with pytest.raises(SystemExit):  # the store flags mean nothing without a name to register
        parse_args(["ckpt.pt", "--output", "out", "--mlflow-tracking-uri", registry[0]])
