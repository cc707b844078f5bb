"""Load any trained model for inference, LoRA fine-tunes included: the loader evaluation, serving and
synthesis call (export streams tensors instead, merging adapters with ``lora.load_lora_checkpoint``).

A LoRA checkpoint holds only the adapters and names its base; the base is loaded (``base.load_base``),
checked against the weights hash the run recorded (``base.BaseChangedError`` if the name now leads to other
weights), the adapters are put on it and merged, so callers get a plain ``Transformer``. Every other input goes
to ``models.load.load_for_inference``, which knows nothing of adapters.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from llmfoundry_lite.models.checkpoint_io import locate_checkpoint, read_run_info
from llmfoundry_lite.models.load import load_for_inference, lora_state, run_tokenizer
from llmfoundry_lite.models.transformer import Transformer


def load_model(path: str, device: str = "cpu") -> tuple[Transformer, Tokenizer]:
    """The model (eval mode, on ``device``) and its tokenizer, from a Composer checkpoint (``.pt`` or
    sharded), a training save folder or an HF export; a LoRA checkpoint comes back merged into its base."""
    p = Path(path)
    if not (p.is_dir() and (p / "config.json").is_file()):
        ckpt = locate_checkpoint(p)
        finetune = lora_state(ckpt)
        if finetune is not None:
            # Imported here: the fine-tuning config pulls in Composer (seconds of start-up), which
            # serving and evaluation of an HF export or a pre-training checkpoint never need.
            from llmfoundry_lite.finetune.lora import load_lora_checkpoint

            info = read_run_info(ckpt)
            tokenizer = run_tokenizer(info.tokenizer_json, ckpt.path)  # fail before reading any weights
            model = load_lora_checkpoint(ckpt, info.model_cfg, finetune)
            return model.to(device).eval(), tokenizer
    return load_for_inference(path, device)
