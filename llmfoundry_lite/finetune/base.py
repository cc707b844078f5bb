"""Where fine-tuning starts: our Composer checkpoint / save folder, or a local HF Llama directory.

**The base is pinned.** A save folder is a moving name (``base=runs/code-tiny`` follows its newest
checkpoint), and LoRA checkpoints hold adapters alone, so a run records which weights its adapters belong
to: ``BasePin`` — the exact checkpoint file (or DCP / HF directory) the name resolved to, and the sha256
of the base *weights*: every tensor of the loaded decoder in sorted name order (name, dtype, shape, then its
bytes). The weights are hashed rather than the file bytes because they are what the adapters are merged
into: a base re-saved with another optimizer state, or the same weights in another format, is still the
right base, while any changed weight is not; and the hash costs no extra read, since resume and export load
those weights anyway. Resume and export refuse (``BaseChangedError``) when the hash of what the name
resolves to now differs from the recorded one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from llmfoundry_lite.finetune.hf_chat import JinjaChat, read_chat_template
from llmfoundry_lite.models.checkpoint_io import locate_checkpoint, read_run_info
from llmfoundry_lite.models.hf_export import hf_model_config
from llmfoundry_lite.models.load import load_for_inference, run_tokenizer
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.tokenizer import load_tokenizer

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


class BaseChangedError(ValueError):
    """The weights behind a run's ``base`` are not those its adapters were trained on."""


@dataclass(frozen=True)
class BasePin:
    """Which base weights a run used: the resolved checkpoint ``file`` and the ``sha256`` of its weights."""

    file: str
    sha256: str


def is_hf_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "config.json").is_file()


def resolve_base_file(path: str) -> Path:
    """The checkpoint ``base=path`` names now: a save folder's newest (``latest-rank0.pt``) checkpoint file or
    DCP directory, a checkpoint itself, or an HF directory."""
    return Path(path).resolve() if is_hf_dir(path) else locate_checkpoint(path).path


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over every tensor of ``model``'s state dict in sorted name order: name, dtype, shape, bytes."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def pin_base(path: str, model: torch.nn.Module) -> BasePin:
    """The pin of the base ``path`` whose freshly loaded weights are ``model`` (before any adapter)."""
    return BasePin(str(resolve_base_file(path)), weights_sha256(model))


def check_base_pin(recorded: dict, current: BasePin, name: str, where: str, fix: str) -> None:
    """Raise ``BaseChangedError`` when ``current`` (what base ``name`` resolves to now) is not the base of
    ``recorded`` (a ``FinetuneInfo`` state); ``where`` names the checkpoint, ``fix`` what the user can do."""
    if recorded.get("base_sha256") is None:
        raise BaseChangedError(f"{where} records no base weights hash (written before bases were pinned); its base "
                               f"{name} cannot be checked, so its adapters are not put on it")
    if recorded["base_sha256"] != current.sha256:
        raise BaseChangedError(
            f"{where} was fine-tuned from base file {recorded['base_file']} (weights sha256 "
            f"{recorded['base_sha256'][:16]}…), but base {name} now resolves to {current.file} (weights sha256 "
            f"{current.sha256[:16]}…): the base changed, and its adapters would land on other weights. {fix}")


def load_base(path: str) -> tuple[Transformer, Tokenizer]:
    """The base decoder (fp32, train mode) and its tokenizer (special tokens never matched in text)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"base={path!r} does not exist; give a checkpoint, save folder or HF directory")
    if is_hf_dir(p):
        check_hf_config(p)
    model, tokenizer = load_for_inference(path)
    return model.train(), tokenizer


def base_on_meta(path: str) -> tuple[Transformer, Tokenizer]:
    """The base's decoder built on the meta device (no weights read, no memory) and its tokenizer: an FSDP
    rank other than 0 receives its shard of rank 0's weights (``training/parallel.py``, Initialisation).

    The shape comes from the checkpoint's ``RunInfo``, or from an HF base's ``config.json`` (checked as
    ``load_base`` checks it, so every rank refuses the same unsupported base)."""
    if is_hf_dir(path):
        check_hf_config(Path(path))
        cfg, tokenizer = hf_model_config(path), load_tokenizer(Path(path))
    else:
        ckpt = locate_checkpoint(path)
        info = read_run_info(ckpt)
        cfg, tokenizer = info.model_cfg, run_tokenizer(info.tokenizer_json, ckpt.path)
    with torch.device("meta"):
        model = Transformer(cfg)
    return model.train(), tokenizer


def base_chat_template(path: str) -> JinjaChat | None:
    """The chat template an HF base brings (None for our checkpoints, which use ``chat.CHAT_TEMPLATE``)."""
    p = Path(path)
    return read_chat_template(p) if is_hf_dir(p) else None
