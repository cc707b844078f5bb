"""The backends ``python scripts/serve.py --model PATH`` serves with: each builder loads the model and
returns its engine (``BACKENDS``); the command itself (flags, uvicorn) is ``cli/serve.py``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from llmfoundry_lite.eval.generation import eos_id_of
from llmfoundry_lite.finetune.load import load_model
from llmfoundry_lite.serve.adapters import MultiLora, read_adapters
from llmfoundry_lite.serve.config import ServeConfig
from llmfoundry_lite.serve.protocol import ServedModel
from llmfoundry_lite.serve.request import Engine

log = logging.getLogger(__name__)


def pick_device(choice: str) -> tuple[str, torch.dtype]:
    """Device and weight dtype: bf16 on a CUDA GPU that supports it (half the memory traffic,
    tensor cores), fp32 otherwise — CPUs gain nothing from bf16 matmuls in PyTorch's eager mode."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    device = "cuda" if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()) else "cpu"
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    return device, torch.bfloat16 if bf16 else torch.float32


def build_ours(cfg: ServeConfig) -> tuple[Engine, ServedModel]:
    """Our Transformer on the best device, with continuous batching."""
    from llmfoundry_lite.serve.engine import ContinuousEngine

    device, dtype = pick_device(cfg.device)
    model, tokenizer = load_model(cfg.model, device=device)
    adapters = read_adapters(cfg.lora_specs(), model, cfg.model)  # before the cast: hashes of weights as saved
    model = model.to(dtype)
    log.info("serving %s on %s in %s", cfg.model, device, dtype)
    lora = MultiLora(model, adapters, cfg.max_batch) if adapters else None
    engine = ContinuousEngine(model, tokenizer, cfg.max_batch, cfg.max_waiting, cfg.speculation(), lora)
    return engine, served_model(cfg, tokenizer, model.cfg.max_seq_len)


def build_ct2(cfg: ServeConfig) -> tuple[Engine, ServedModel]:
    """The CTranslate2 conversion of the model (made once, kept beside it) on CPU."""
    from llmfoundry_lite.serve.ct2 import CT2Engine, prepare_ct2

    model_dir, tokenizer, max_seq_len = prepare_ct2(cfg.model, cfg.ct2_dir, cfg.ct2_compute_type)
    engine = CT2Engine(model_dir, tokenizer, cfg.ct2_compute_type, cfg.max_batch, cfg.max_waiting)
    return engine, served_model(cfg, tokenizer, max_seq_len)


BACKENDS: dict[str, Callable[[ServeConfig], tuple[Engine, ServedModel]]] = {"ours": build_ours, "ct2": build_ct2}
"""``--backend`` name → builder of its engine."""


def served_model(cfg: ServeConfig, tokenizer, max_seq_len: int) -> ServedModel:
    """What the API says about the model: its name (``--model-name`` or the directory's), limits and EOS."""
    name = cfg.model_name or Path(cfg.model).resolve().name
    if name in cfg.lora_specs():
        raise ValueError(f"--lora {name}=... has the base model's name; give the adapter another name")
    return ServedModel(name, tokenizer, max_seq_len, eos_id_of(tokenizer), cfg.max_batch, tuple(cfg.lora_specs()),
                       fim_template=cfg.fim_template)


def fetch_model(cfg: ServeConfig) -> ServeConfig:
    """``cfg`` itself, or for ``--model models:/NAME/VERSION`` (or ``models:/NAME@alias``) the same settings
    pointing at that version's HF export, downloaded from the MLflow registry (``MLFLOW_TRACKING_URI``) into a
    temporary directory removed at exit. The model is served as NAME unless ``--model-name`` says otherwise."""
    from llmfoundry_lite.models.mlflow_registry import fetch_registered, is_registry_uri

    if not is_registry_uri(cfg.model):
        return cfg
    import atexit
    import dataclasses
    import shutil

    fetched = fetch_registered(cfg.model)
    atexit.register(shutil.rmtree, fetched.root, ignore_errors=True)
    log.info("%s is version %s of %s, fetched to %s", cfg.model, fetched.version, fetched.name, fetched.path)
    return dataclasses.replace(cfg, model=str(fetched.path), model_name=cfg.model_name or fetched.name)
