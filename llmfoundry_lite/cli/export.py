"""``python scripts/export_hf.py CHECKPOINT --output DIR``: export, reload with transformers, generate.

CHECKPOINT is a Composer checkpoint in either format — a ``.pt`` file or a sharded (torch
distributed-checkpoint) directory — or a training save folder (its ``latest-rank0.pt``). The
weights stream from the checkpoint into safetensors shards one tensor at a time, so neither a GPU,
a process group nor memory for the whole model is needed.

The export is only useful if the transformers ecosystem can load it, so the command
proves that right away: it reloads ``DIR`` with ``AutoModelForCausalLM`` and
``AutoTokenizer`` (no llmfoundry_lite code involved) and greedily completes a prompt,
writing the text to ``DIR/sample_generation.txt``; a fine-tuned model's export (it carries the
chat template) also answers ``--chat-message`` through ``apply_chat_template`` (``DIR/sample_chat.txt``).

``--mlflow-register NAME`` then logs the export as an MLflow model (``transformers`` flavor: weights,
tokenizer and generation config) in a run of the tracking store (``--mlflow-tracking-uri``, default
``$MLFLOW_TRACKING_URI``) and registers it as a new version of NAME (``models/mlflow_registry.py``);
``scripts/serve.py --model models:/NAME/VERSION`` serves it.

``--adapter-only`` (LoRA checkpoints) writes the adapters alone in peft's format
(``finetune/peft_export.py``) instead of the merged model, and when the HF base is known
(``--base-hf``, or the run's ``base`` is an HF directory) proves them with transformers + peft.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmfoundry_lite.cli.common import user_errors

DEFAULT_PROMPT = "def add(a, b):\n"
DEFAULT_CHAT_MESSAGE = "Write a function that returns the sum of a list of numbers."
DTYPES = ("float32", "bfloat16", "float16")


def parse_size(text: str) -> int:
    """``"2GB"`` (10^9), ``"500MiB"`` (2^20), ``"20KB"`` or plain bytes → bytes, as HF's
    ``max_shard_size`` reads it."""
    from transformers.utils.hub import convert_file_size_to_int

    try:
        size = int(text) if text.isdigit() else convert_file_size_to_int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--max-shard-size {text!r}: give bytes or e.g. 2GB, 500MB, 1GiB") from e
    if size <= 0:
        raise argparse.ArgumentTypeError(f"--max-shard-size must be positive, got {text!r}")
    return size


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The flags (argparse exits 2 naming a bad one)."""
    p = argparse.ArgumentParser(prog="scripts/export_hf.py", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="Composer checkpoint (.pt file or sharded directory) or training save folder")
    p.add_argument("--output", required=True, help="directory for the Hugging Face export")
    # default in bytes (2GB in HF's units): a string default would go through parse_size, importing
    # transformers before a bad flag could fail
    p.add_argument("--max-shard-size", type=parse_size, default=2 * 10**9,
                   help="largest safetensors file (HF units: 2GB = 2e9 bytes, 2GiB = 2^31); default 2GB")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="dtype of the exported weights")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="text to complete after reloading")
    p.add_argument("--max-new-tokens", type=int, default=48, help="length of the sample completion")
    p.add_argument("--chat-message", default=DEFAULT_CHAT_MESSAGE,
                   help="a fine-tuned export (one with a chat template) also answers this user message")
    p.add_argument("--adapter-only", action="store_true",
                   help="LoRA checkpoint: write only the adapters, in peft's format (adapter_config.json + "
                        "adapter_model.safetensors), instead of the merged model")
    p.add_argument("--base-hf", default=None,
                   help="with --adapter-only: the HF export of the base the adapters apply to (default: the "
                        "run's base when it is an HF directory)")
    p.add_argument("--mlflow-register", metavar="NAME", default=None,
                   help="log the export as an MLflow transformers model and register a new version of NAME")
    p.add_argument("--mlflow-tracking-uri", default=None,
                   help="with --mlflow-register: the tracking and registry store (default $MLFLOW_TRACKING_URI)")
    p.add_argument("--mlflow-experiment", default=None,
                   help="with --mlflow-register: the run's experiment (default: MLflow's, $MLFLOW_EXPERIMENT_NAME)")
    args = p.parse_args(argv)
    if args.base_hf is not None and not args.adapter_only:
        p.error("--base-hf only applies with --adapter-only")
    if args.mlflow_register is None and (args.mlflow_tracking_uri or args.mlflow_experiment):
        p.error("--mlflow-tracking-uri and --mlflow-experiment only apply with --mlflow-register")
    if args.mlflow_register is not None and args.adapter_only:
        p.error("--mlflow-register registers a whole model; it does not apply with --adapter-only")
    return args


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, max_shard_bytes: int,
                      dtype: str = "float32") -> tuple[Path, int]:
    """Stream a Composer checkpoint (either format) into a LlamaForCausalLM directory stored as
    ``dtype`` (one of ``DTYPES``); returns the directory and the number of parameters exported."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}; choose from {list(DTYPES)}")
    import torch

    from llmfoundry_lite.finetune.chat import CHAT_TEMPLATE, END_OF_TURN
    from llmfoundry_lite.models.checkpoint_io import (
        iter_transformer_tensors,
        locate_checkpoint,
        read_callback_state,
        read_run_info,
    )
    from llmfoundry_lite.models.hf_export import export_tensors
    from llmfoundry_lite.models.load import run_tokenizer

    ckpt = locate_checkpoint(checkpoint)
    info = read_run_info(ckpt)
    tokenizer = run_tokenizer(info.tokenizer_json, ckpt.path)
    finetune = read_callback_state(ckpt, "FinetuneInfo")
    if finetune and finetune.get("lora"):  # adapters alone: merged into the base they were trained on
        from llmfoundry_lite.finetune.lora import load_lora_checkpoint

        tensors = load_lora_checkpoint(ckpt, info.model_cfg, finetune).named_parameters()
    else:
        tensors = iter_transformer_tensors(ckpt)
    chat_template = finetune.get("chat_template") if finetune else None
    stops = (END_OF_TURN,) if chat_template == CHAT_TEMPLATE else ()  # our template: a reply ends its turn
    out = export_tensors(tensors, info.model_cfg, tokenizer, out_dir, max_shard_bytes, getattr(torch, dtype),
                         chat_template, stops)
    return out, info.model_cfg.num_params()


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


def chat_with_transformers(export_dir: Path, message: str, max_new_tokens: int) -> str:
    """Greedy reply to one user ``message``, laid out by the export's own chat template (transformers only)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(str(export_dir))
    model = AutoModelForCausalLM.from_pretrained(str(export_dir), dtype=torch.float32).eval()
    ids = tok.apply_chat_template([{"role": "user", "content": message}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    generation = GenerationConfig.from_pretrained(str(export_dir))  # its eos list ends the turn
    with torch.no_grad():
        out = model.generate(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"],
                             max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=generation.eos_token_id,
                             pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def export_adapter_main(args: argparse.Namespace) -> None:
    """``--adapter-only``: the LoRA adapters in peft's format, proved with transformers + peft when the base is known."""
    from llmfoundry_lite.finetune.peft_export import export_adapter, generate_with_peft

    out, base, n = export_adapter(args.checkpoint, args.output, args.base_hf)
    size = (out / "adapter_model.safetensors").stat().st_size
    print(f"exported {n} LoRA tensors ({size / 1e6:.2f} MB) to {out} in peft's format for LlamaForCausalLM")
    if base is None:
        print("the run's base is not an HF directory: export it with scripts/export_hf.py <base> --output BASE, "
              "then pass --base-hf BASE (or load with PeftModel.from_pretrained(<BASE model>, DIR))")
        return
    text = args.prompt + generate_with_peft(base, out, args.prompt, args.max_new_tokens)
    (out / "sample_generation.txt").write_text(text)
    print(f"reloaded {base} + adapters with transformers and peft; greedy completion:\n{text}")


def main(argv: list[str]) -> None:
    """Export, reload with transformers and complete the prompt (and the chat message, for a fine-tune)."""
    args = parse_args(argv)
    from llmfoundry_lite.finetune.base import BaseChangedError

    # A missing checkpoint path names itself; a LoRA run whose base changed names both bases' files and hashes.
    with user_errors(BaseChangedError):
        if args.adapter_only:
            return export_adapter_main(args)
        export_main(args)


def export_main(args: argparse.Namespace) -> None:
    """The merged model in HF format, proved by transformers alone."""
    out, n_params = export_checkpoint(args.checkpoint, args.output, args.max_shard_size, args.dtype)
    shards = sorted(p.name for p in out.glob("model*.safetensors"))
    print(f"exported {n_params:,} parameters to {out} (LlamaForCausalLM + tokenizer, {len(shards)} safetensors file(s))")
    completion = generate_with_transformers(out, args.prompt, args.max_new_tokens)
    text = args.prompt + completion
    (out / "sample_generation.txt").write_text(text)
    print(f"reloaded with transformers; greedy completion:\n{text}")
    from llmfoundry_lite.finetune.hf_chat import read_chat_template

    if read_chat_template(out) is not None:
        reply = chat_with_transformers(out, args.chat_message, args.max_new_tokens)
        (out / "sample_chat.txt").write_text(f"user: {args.chat_message}\nassistant: {reply}\n")
        print(f"chat through the export's template (apply_chat_template), greedy reply to {args.chat_message!r}:\n{reply}")
    if args.mlflow_register is not None:
        from llmfoundry_lite.models.mlflow_registry import register_export

        params = {"checkpoint": str(args.checkpoint), "dtype": args.dtype, "parameters": n_params}
        uri = register_export(out, args.mlflow_register, args.mlflow_tracking_uri, args.mlflow_experiment, params)
        store = f"MLFLOW_TRACKING_URI={args.mlflow_tracking_uri} " if args.mlflow_tracking_uri else ""
        print(f"registered in MLflow as {uri}; serve it with: {store}python scripts/serve.py --model {uri}")
