"""Export a trained model to Hugging Face format.

    python scripts/export_hf.py <checkpoint.pt | save_folder> --output DIR [--prompt TEXT] [--max-new-tokens N]

DIR gets config.json, model.safetensors and the tokenizer files, loadable with
``AutoModelForCausalLM.from_pretrained(DIR)`` / ``AutoTokenizer.from_pretrained(DIR)`` as a
``LlamaForCausalLM`` (so vLLM and the transformers ecosystem can serve it). With ``--prompt`` the
export is reloaded through transformers, completes the prompt greedily, and the text is written
to DIR/sample_generation.txt.
"""

import argparse
import sys
from pathlib import Path

from llmfoundry_lite.models.hf_export import export_hf
from llmfoundry_lite.models.load import load_for_inference


def sample_with_transformers(out: Path, prompt: str, max_new_tokens: int) -> str:
    """Greedy completion of ``prompt`` by the exported model, loaded back with transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    new = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:]
    return prompt + tokenizer.decode(new, skip_special_tokens=True)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a Composer .pt checkpoint or a training save folder")
    p.add_argument("--output", required=True, help="directory to write the Hugging Face model to")
    p.add_argument("--prompt", default=None, help="complete this prompt with the reloaded export")
    p.add_argument("--max-new-tokens", type=int, default=64)
    args = p.parse_args(argv)
    model, tokenizer = load_for_inference(args.checkpoint)
    out = export_hf(model, tokenizer, args.output)
    print(f"wrote {out} ({sum(q.numel() for q in model.parameters()):,} parameters, LlamaForCausalLM)")
    if args.prompt is not None:
        text = sample_with_transformers(out, args.prompt, args.max_new_tokens)
        (out / "sample_generation.txt").write_text(text + "\n")
        print(f"sample completion (transformers, greedy) → {out / 'sample_generation.txt'}:\n{text}")


if __name__ == "__main__":
    main(sys.argv[1:])
