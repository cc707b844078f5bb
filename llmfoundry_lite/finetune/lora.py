"""LoRA on our decoder through peft: inject adapters, freeze the rest, save / load / merge adapters only."""

from __future__ import annotations

import torch

from llmfoundry_lite.finetune.config import LoraConfig
from llmfoundry_lite.models.config import ModelConfig

ADAPTER_MARK = "lora_"


def apply_lora(model: torch.nn.Module, cfg: LoraConfig) -> tuple[int, int]:
    """Inject adapters into every block's ``cfg.target_modules`` and freeze every other weight.

    Returns (trainable parameters, all parameters). The base weights must be loaded before this:
    injection renames a wrapped layer's weight to ``<layer>.base_layer.weight``."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import inject_adapter_in_model

    peft_cfg = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                              target_modules=list(cfg.target_modules), bias="none")
    inject_adapter_in_model(peft_cfg, model)
    trainable = total = 0
    for name, p in model.named_parameters():
        p.requires_grad = ADAPTER_MARK in name
        trainable += p.numel() if p.requires_grad else 0
        total += p.numel()
    if trainable == 0:
        raise ValueError(f"lora.target_modules {cfg.target_modules} matched no layer of the model")
    return trainable, total


def is_adapter_key(key: str) -> bool:
    return ADAPTER_MARK in key


def drop_frozen_weights(state_dict: dict) -> None:
    """Composer ``save_ignore_keys`` hook: keep only adapter tensors of the model in a checkpoint
    (the base weights are re-read from ``base`` when the run resumes or is exported)."""
    model_state = state_dict.get("state", {}).get("model", {})
    for key in [k for k in model_state if not is_adapter_key(k)]:
        del model_state[key]


def merge_lora(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every adapter into its base layer (W + alpha/r · B A) and put the plain layer back."""
    from peft.tuners.lora import LoraLayer

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoraLayer):
                child.merge()
                setattr(parent, name, child.get_base_layer())
    return model


def load_lora_checkpoint(ckpt, model_cfg: ModelConfig, finetune: dict) -> torch.nn.Module:
    """The fine-tuned decoder of a LoRA checkpoint: its base (named in the checkpoint), the saved
    adapters loaded into it, merged — a plain ``Transformer`` with the run's model config.

    ``BaseChangedError`` when the base's name now leads to other weights than the run recorded
    (``base.py``: a newer checkpoint in the base's save folder, or the file overwritten)."""
    from llmfoundry_lite.finetune.base import check_base_pin, load_base, pin_base
    from llmfoundry_lite.models.checkpoint_io import iter_transformer_tensors

    model, _ = load_base(finetune["base"])
    check_base_pin(finetune, pin_base(finetune["base"], model), finetune["base"], str(ckpt.path),
                   f"Make {finetune['base']} lead to the recorded file's weights again (restore it, and the save "
                   f"folder's latest-rank0.pt link to it), or fine-tune the new base.")
    model.cfg = model_cfg  # the run's config (it may switch doc_mask on for packed rows)
    apply_lora(model, LoraConfig(**finetune["lora"]))
    targets = {n: p for n, p in model.state_dict().items() if is_adapter_key(n)}
    seen = set()
    with torch.no_grad():
        for name, t in iter_transformer_tensors(ckpt):
            if name not in targets or targets[name].shape != t.shape:
                raise ValueError(f"{ckpt.path}: adapter tensor {name}{tuple(t.shape)} does not fit the base "
                                 f"{finetune['base']} with lora {finetune['lora']}")
            targets[name].copy_(t)
            seen.add(name)
    missing = sorted(set(targets) - seen)
    if missing:
        raise ValueError(f"{ckpt.path} lacks adapter tensors {missing[:4]}{'…' if len(missing) > 4 else ''}")
    return merge_lora(model).eval()
