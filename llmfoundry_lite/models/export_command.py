"""``python scripts/export_hf.py CHECKPOINT --output DIR``: export, reload with transformers, generate.

The export is only useful if the transformers ecosystem can load it, so the command
proves that right away: it reloads ``DIR`` with ``AutoModelForCausalLM`` and
``AutoTokenizer`` (no llmfoundry_lite code involved) and greedily completes a prompt,
writing the text to ``DIR/sample_generation.txt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_PROMPT = "def add(a, b):\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/export_hf.py", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="Composer checkpoint (.pt) or training save folder")
    p.add_argument("--output", required=True, help="directory for the Hugging Face export")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="text to complete after reloading")
    p.add_argument("--max-new-tokens", type=int, default=48, help="length of the sample completion")
    return p.parse_args(argv)


def generate_with_transformers(export_dir: Path, prompt: str, max_new_tokens: int) -> str:
    """Greedy completion of ``prompt`` by the exported model, loaded through transformers only."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(export_dir))
    model = AutoModelForCausalLM.from_pretrained(str(export_dir), dtype=torch.float32).eval()
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False, return_token_type_ids=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from llmfoundry_lite.models.hf_export import export_hf
    from llmfoundry_lite.models.load import load_for_inference

    model, tokenizer = load_for_inference(args.checkpoint)
    out = export_hf(model, tokenizer, args.output)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"exported {n_params:,} parameters to {out} (LlamaForCausalLM + tokenizer)")
    completion = generate_with_transformers(out, args.prompt, args.max_new_tokens)
    text = args.prompt + completion
    (out / "sample_generation.txt").write_text(text)
    print(f"reloaded with transformers; greedy completion:\n{text}")
