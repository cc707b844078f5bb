"""Where fine-tuning starts: our Composer checkpoint / save folder, or a local HF Llama directory."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer

from llmfoundry_lite.finetune.hf_chat import JinjaChat, read_chat_template
from llmfoundry_lite.models.load import load_for_inference
from llmfoundry_lite.models.transformer import Transformer

# HF Llama config features our decoder does not implement: loading them would give wrong logits.
UNSUPPORTED = {
    "rope_scaling": lambda v: v not in (None, {}),
    "attention_bias": bool,
    "mlp_bias": bool,
    "hidden_act": lambda v: v != "silu",
    "pretraining_tp": lambda v: v not in (None, 1),
    "sliding_window": lambda v: v is not None,
}


def check_hf_config(path: Path) -> dict:
    """The HF ``config.json`` of ``path`` if our decoder computes that model exactly; ValueError otherwise."""
    cfg = json.loads((path / "config.json").read_text())
    problems = []
    if cfg.get("model_type") != "llama":
        problems.append(f"model_type={cfg.get('model_type')!r} (only llama)")
    for key, bad in UNSUPPORTED.items():
        if key in cfg and bad(cfg[key]):
            problems.append(f"{key}={cfg[key]!r}")
    head_dim = cfg.get("head_dim")
    if head_dim is not None and head_dim * cfg["num_attention_heads"] != cfg["hidden_size"]:
        problems.append(f"head_dim={head_dim} != hidden_size / num_attention_heads")
    if problems:
        raise ValueError(f"base {path}: unsupported Llama features {', '.join(problems)}; our decoder would "
                         f"compute different logits, so it is not loaded")
    return cfg


def load_base(path: str) -> tuple[Transformer, Tokenizer]:
    """The base decoder (fp32, train mode) and its tokenizer (special tokens never matched in text)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"base={path!r} does not exist; give a checkpoint, save folder or HF directory")
    if p.is_dir() and (p / "config.json").is_file():
        check_hf_config(p)
    model, tokenizer = load_for_inference(path)
    return model.train(), tokenizer


def base_chat_template(path: str) -> JinjaChat | None:
    """The chat template an HF base brings (None for our checkpoints, which use ``chat.CHAT_TEMPLATE``)."""
    p = Path(path)
    return read_chat_template(p) if p.is_dir() and (p / "config.json").is_file() else None
