"""A LoRA checkpoint's adapters alone, in peft's format for a Hugging Face ``LlamaForCausalLM``.

``scripts/export_hf.py CKPT --output DIR --adapter-only [--base-hf BASE_DIR]`` writes
``DIR/adapter_config.json`` and ``DIR/adapter_model.safetensors``; ``PeftModel.from_pretrained(
AutoModelForCausalLM.from_pretrained(BASE_DIR), DIR)`` then computes exactly the merged model.

Our decoder fuses q/k/v (``qkv_proj``) and gate/up (``gate_up_proj``); HF keeps them apart. An
adapter on a fused layer adds ``B·A`` with ``A`` (r × d_in) shared by every output row, so on HF's
layers it becomes one adapter per part: the same ``A`` and ``B``'s rows of that part — the same
update, with rank r and alpha unchanged (``q_proj`` gets ``B_q·A``, and so on).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.hf_export import hf_weight_names, to_hf_tensors

PEFT_PREFIX = "base_model.model."
# Our LoRA target → the HF Llama modules it covers.
HF_TARGETS = {"qkv_proj": ["q_proj", "k_proj", "v_proj"], "o_proj": ["o_proj"],
              "gate_up_proj": ["gate_proj", "up_proj"], "down_proj": ["down_proj"]}


def split_key(name: str) -> tuple[str, str]:
    """``blocks.0.attn.qkv_proj.lora_B.default.weight`` → (``blocks.0.attn.qkv_proj.weight``, ``lora_B``)."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part in ("lora_A", "lora_B"):
            if parts[i + 1:] not in (["default", "weight"], ["weight"]):
                break
            return ".".join(parts[:i] + ["weight"]), part
    raise ValueError(f"{name!r} is not a LoRA weight (lora_A / lora_B of the default adapter)")


def hf_adapter_tensors(tensors: Iterable[tuple[str, torch.Tensor]], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Our adapter tensors (by our parameter names) → peft's state dict for LlamaForCausalLM."""
    out: dict[str, torch.Tensor] = {}
    for name, t in tensors:
        weight, kind = split_key(name)
        if kind == "lora_A":
            pieces = [(hf, t) for hf in hf_weight_names(weight)]
        else:
            pieces = to_hf_tensors(weight, t, cfg)
        for hf, part in pieces:
            out[f"{PEFT_PREFIX}{hf.removesuffix('.weight')}.{kind}.weight"] = part.detach().to("cpu").contiguous().clone()
    return out


def resolve_base_hf(finetune: dict, base_hf: str | None) -> str | None:
    """The HF directory the adapters apply to: ``--base-hf``, or the run's ``base`` when that is one."""
    if base_hf is not None:
        if not (Path(base_hf) / "config.json").is_file():
            raise FileNotFoundError(f"--base-hf {base_hf!r} has no config.json; export the base with "
                                    f"scripts/export_hf.py {finetune['base']} --output DIR first")
        return str(Path(base_hf).resolve())
    base = Path(finetune["base"])
    return str(base.resolve()) if (base / "config.json").is_file() else None


def export_adapter(checkpoint: str | Path, out_dir: str | Path, base_hf: str | None = None) -> tuple[Path, str | None, int]:
    """Write the adapters of a LoRA checkpoint in peft's format; returns (dir, HF base or None, tensors)."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    from llmfoundry_lite.models.checkpoint_io import (
        iter_transformer_tensors,
        locate_checkpoint,
        read_callback_state,
        read_run_info,
    )

    ckpt = locate_checkpoint(checkpoint)
    finetune = read_callback_state(ckpt, "FinetuneInfo")
    if not finetune or not finetune.get("lora"):
        raise ValueError(f"{ckpt.path} is not a LoRA checkpoint (no lora in its FinetuneInfo); "
                         f"export the whole model without --adapter-only")
    lora = finetune["lora"]
    info = read_run_info(ckpt)
    tensors = hf_adapter_tensors(iter_transformer_tensors(ckpt), info.model_cfg)
    base = resolve_base_hf(finetune, base_hf)
    if base is not None and base_hf is None:  # the run's own HF base: it must still hold the recorded weights
        from llmfoundry_lite.finetune.base import check_base_pin, load_base, pin_base

        check_base_pin(finetune, pin_base(base, load_base(base)[0]), finetune["base"], str(ckpt.path),
                       f"Restore the recorded weights in {finetune['base']}, or pass --base-hf with the base "
                       f"the adapters were trained on.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targets = [hf for ours in lora["target_modules"] for hf in HF_TARGETS[ours]]
    LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], target_modules=targets,
               bias="none", task_type="CAUSAL_LM", base_model_name_or_path=base).save_pretrained(str(out))
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    return out, base, len(tensors)


def generate_with_peft(base_hf: str, adapter_dir: Path, prompt: str, max_new_tokens: int) -> str:
    """Greedy completion by the HF base with the adapters applied by peft (no llmfoundry_lite code)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_hf)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_hf, dtype=torch.float32),
                                      str(adapter_dir)).eval()
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False, return_token_type_ids=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
