"""Load a trained model for inference from a Composer checkpoint (either format), a save folder
or an HF export."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer

from llmfoundry_lite.models.checkpoint_io import (
    Checkpoint,
    iter_transformer_tensors,
    locate_checkpoint,
    read_callback_state,
    read_run_info,
)
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.tokenizer import load_tokenizer, text_safe


def run_tokenizer(tokenizer_json: str | None, where: Path) -> Tokenizer:
    """The tokenizer a checkpoint carries, made safe for decoding model output."""
    if tokenizer_json is None:
        raise ValueError(f"{where} was trained without a tokenizer directory; cannot decode its outputs")
    return text_safe(Tokenizer.from_str(tokenizer_json))


def _from_composer(ckpt: Checkpoint) -> tuple[Transformer, Tokenizer]:
    info = read_run_info(ckpt)
    tokenizer = run_tokenizer(info.tokenizer_json, ckpt.path)  # fail before reading any weights
    if lora_state(ckpt) is not None:  # adapters alone: only finetune/ knows how to put them on their base
        raise ValueError(f"{ckpt.path} holds LoRA adapters, not a whole model; load it with "
                         f"llmfoundry_lite.finetune.load.load_model, which adds them to their base")
    model = Transformer(info.model_cfg)
    targets = model.state_dict()  # shares storage with the model: copying into it loads the weights
    seen, unexpected = set(), []
    with torch.no_grad():
        for name, t in iter_transformer_tensors(ckpt):  # one tensor at a time: peak is model + one tensor
            if name in targets and targets[name].shape == t.shape:
                targets[name].copy_(t)
                seen.add(name)
            else:
                unexpected.append(f"{name}{tuple(t.shape)}")
            del t  # freed before the next one is read
    missing = sorted(set(targets) - seen)
    if info.model_cfg.tie_embeddings and "lm_head.weight" in missing and "embed.weight" in seen:
        missing.remove("lm_head.weight")  # the same tensor as the embedding
    if missing or unexpected:
        raise ValueError(f"{ckpt.path} does not match its model config {info.model_cfg}: "
                         f"missing={missing} unexpected={unexpected}")
    return model, tokenizer


def lora_state(ckpt: Checkpoint) -> dict | None:
    """The ``FinetuneInfo`` state of a LoRA checkpoint, which holds adapter tensors only: ``base`` (the name
    given), ``base_file`` and ``base_sha256`` (the exact base and its weights' hash, which a loader must
    check before merging: see ``finetune/base.py``), ``lora``, ``chat_template``; None for any other checkpoint."""
    finetune = read_callback_state(ckpt, "FinetuneInfo")
    return finetune if finetune and finetune.get("lora") else None


def load_for_inference(path: str, device: str = "cpu") -> tuple[Transformer, Tokenizer]:
    """The model (eval mode, on ``device``) and its tokenizer.

    ``path`` is a Composer checkpoint — a ``.pt`` file or a sharded (torch distributed-checkpoint)
    directory —, a training save folder (its ``latest-rank0.pt`` is followed) or a directory
    written by ``export_hf`` (``config.json`` + safetensors weights + ``tokenizer.json``). A LoRA
    checkpoint is refused: ``finetune.load.load_model`` loads any trained model, adapters included.
    """
    p = Path(path)
    if p.is_dir() and (p / "config.json").is_file():
        from llmfoundry_lite.models.hf_export import from_hf

        model, tokenizer = from_hf(p), load_tokenizer(p)
    else:
        model, tokenizer = _from_composer(locate_checkpoint(p))
    return model.to(device).eval(), tokenizer
