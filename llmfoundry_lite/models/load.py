"""Load a trained model for inference from a Composer checkpoint, a save folder or an HF export."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.tokenizer import load_tokenizer, text_safe

LATEST = "latest-rank0.pt"


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.pt`` file as is; a save folder → its ``latest-rank0.pt`` (or newest ``*.pt``)."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise FileNotFoundError(f"no checkpoint, save folder or HF export at {p}")
    if (p / LATEST).exists():
        return (p / LATEST).resolve()
    ckpts = sorted(p.glob("*.pt"), key=lambda f: f.stat().st_mtime)
    if not ckpts:
        raise FileNotFoundError(f"{p} holds no *.pt checkpoint and no config.json (HF export)")
    return ckpts[-1]


def _from_composer(ckpt: Path) -> tuple[Transformer, Tokenizer]:
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    info = saved["state"].get("callbacks", {}).get("RunInfo")
    if info is None:
        raise ValueError(f"{ckpt} carries no RunInfo (model config + tokenizer); was it written by train.py?")
    model = Transformer(ModelConfig(**info["model_config"]))
    weights = {k.removeprefix("model."): v for k, v in saved["state"]["model"].items()}
    model.load_state_dict(weights)
    if info["tokenizer_json"] is None:
        raise ValueError(f"{ckpt} was trained without a tokenizer directory; cannot decode its outputs")
    return model, text_safe(Tokenizer.from_str(info["tokenizer_json"]))


def load_for_inference(path: str, device: str = "cpu") -> tuple[Transformer, Tokenizer]:
    """The model (eval mode, on ``device``) and its tokenizer.

    ``path`` is a Composer checkpoint (``.pt``), a training save folder (its latest
    checkpoint is used) or a directory written by ``export_hf`` (``config.json`` +
    ``model.safetensors`` + ``tokenizer.json``).
    """
    p = Path(path)
    if p.is_dir() and (p / "config.json").is_file():
        from llmfoundry_lite.models.hf_export import from_hf

        model, tokenizer = from_hf(p), load_tokenizer(p)
    else:
        model, tokenizer = _from_composer(resolve_checkpoint(p))
    return model.to(device).eval(), tokenizer
