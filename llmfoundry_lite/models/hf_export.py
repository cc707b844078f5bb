"""Export to / import from Hugging Face ``LlamaForCausalLM`` (same math: RoPE halves layout,
RMSNorm, SwiGLU, no biases), so vLLM and the transformers ecosystem can load our models.

The export streams: weights arrive as (name, tensor) pairs — from a live model or straight from a
checkpoint (``checkpoint_io``) — and leave as safetensors shards in HF's layout
(``model-00001-of-0000N.safetensors`` + ``model.safetensors.index.json``, or one
``model.safetensors`` when everything fits one shard). Memory holds one shard (twice while
safetensors serializes it) and the tensor being read, whatever the size of the model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.tokenizer.special import EOS, PAD

# HF's file names (transformers.utils.SAFE_WEIGHTS_NAME / SAFE_WEIGHTS_INDEX_NAME), spelled out so
# that writing an export does not import transformers.
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_BYTES = 2 * 10**9  # "2GB": big enough for few files, small enough to hold in RAM

# our parameter name → HF name(s) inside layer i; fused weights are split by rows in this order.
_LAYER_NAMES = {
    "attn_norm.weight": ["input_layernorm.weight"],
    "attn.qkv_proj.weight": ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"],
    "attn.o_proj.weight": ["self_attn.o_proj.weight"],
    "mlp_norm.weight": ["post_attention_layernorm.weight"],
    "mlp.gate_up_proj.weight": ["mlp.gate_proj.weight", "mlp.up_proj.weight"],
    "mlp.down_proj.weight": ["mlp.down_proj.weight"],
}
_TOP_NAMES = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight",
              "lm_head.weight": "lm_head.weight"}


def _row_split(name: str, cfg: ModelConfig) -> list[int]:
    if name.endswith("qkv_proj.weight"):
        return [cfg.n_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim]
    if name.endswith("gate_up_proj.weight"):
        return [cfg.ffn_dim, cfg.ffn_dim]
    return []


def hf_names(cfg: ModelConfig) -> set[str]:
    """Every weight an exported ``LlamaForCausalLM`` of this shape stores (tied heads store none)."""
    names = {hf for ours, hf in _TOP_NAMES.items() if not (cfg.tie_embeddings and ours == "lm_head.weight")}
    for i in range(cfg.n_layers):
        names |= {f"model.layers.{i}.{hf}" for hfs in _LAYER_NAMES.values() for hf in hfs}
    return names


def hf_weight_names(name: str) -> list[str]:
    """The LlamaForCausalLM weight name(s) of one of ours, in row order for a fused weight."""
    if name in _TOP_NAMES:
        return [_TOP_NAMES[name]]
    parts = name.split(".", 2)  # blocks.{i}.<rest>
    if len(parts) != 3 or parts[0] != "blocks" or parts[2] not in _LAYER_NAMES:
        raise ValueError(f"no LlamaForCausalLM name for weight {name!r}; extend hf_export._LAYER_NAMES")
    return [f"model.layers.{parts[1]}.{hf}" for hf in _LAYER_NAMES[parts[2]]]


def to_hf_tensors(name: str, t: torch.Tensor, cfg: ModelConfig) -> list[tuple[str, torch.Tensor]]:
    """One of our tensors → its LlamaForCausalLM name(s); fused q/k/v and gate/up are split back
    into HF's matrices (views of ``t``)."""
    split = _row_split(name, cfg)
    pieces = t.split(split) if split else [t]
    return list(zip(hf_weight_names(name), pieces, strict=True))


def from_hf_state(hf: dict[str, torch.Tensor], model: Transformer) -> dict[str, torch.Tensor]:
    """LlamaForCausalLM's state dict → ours (the inverse of ``to_hf_tensors``)."""
    out = {}
    for name, _ in model.named_parameters():
        if name in _TOP_NAMES:
            out[name] = hf[_TOP_NAMES[name]]
            continue
        _, layer, rest = name.split(".", 2)
        out[name] = torch.cat([hf[f"model.layers.{layer}.{n}"] for n in _LAYER_NAMES[rest]])
    return out


@dataclass(frozen=True)
class ExportTokens:
    """The end-of-text and padding tokens an export names, as strings and ids of one tokenizer."""

    eos: str
    eos_id: int
    pad: str
    pad_id: int


def export_tokens(tokenizer: Tokenizer, cfg: ModelConfig) -> ExportTokens:
    """End-of-text and padding of the export, both read from ``tokenizer`` (never assumed ids).

    End-of-text is our ``<|endoftext|>`` where the tokenizer has it, else the token at
    ``cfg.eos_id`` (an HF base's own end token: ``from_hf`` reads it from the base's config).
    Padding is our ``<|pad|>``, else end-of-text (padding is never attended to or scored). A
    token missing from the tokenizer or an id past the model's ``vocab_size`` is a ValueError:
    transformers would otherwise add the token as a new id the embedding has no row for.
    """
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size > cfg.vocab_size:
        raise ValueError(f"the tokenizer holds {size} tokens (up to id {size - 1}) but the model has "
                         f"vocab_size={cfg.vocab_size} embedding rows; export with the tokenizer it was trained with")
    eos_id = tokenizer.token_to_id(EOS)
    eos_id = cfg.eos_id if eos_id is None else eos_id
    eos = tokenizer.id_to_token(eos_id)
    if eos is None:
        raise ValueError(f"end-of-text: the tokenizer has no {EOS!r} and no token at model.eos_id={eos_id}; "
                         f"set model.eos_id to the tokenizer's end-of-text id")
    pad_id = tokenizer.token_to_id(PAD)
    pad_id = eos_id if pad_id is None else pad_id
    return ExportTokens(eos=eos, eos_id=eos_id, pad=tokenizer.id_to_token(pad_id), pad_id=pad_id)


def llama_config(cfg: ModelConfig, tokens: ExportTokens):  # -> transformers.LlamaConfig
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ffn_dim,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.kv_heads,
        max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings, attention_bias=False, mlp_bias=False, hidden_act="silu",
        initializer_range=cfg.init_std, eos_token_id=tokens.eos_id, bos_token_id=tokens.eos_id,
        pad_token_id=tokens.pad_id,
    )


def _remove_old_weights(out: Path) -> None:
    # A previous export with another shard count would leave files that transformers prefers
    # (model.safetensors wins over an index) — HF's save_pretrained cleans the same way.
    for f in [*out.glob("model-*-of-*.safetensors"), out / WEIGHTS_NAME, out / INDEX_NAME]:
        f.unlink(missing_ok=True)


def write_safetensors_shards(tensors: Iterable[tuple[str, torch.Tensor]], out_dir: str | Path,
                             max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> dict[str, str]:
    """Write (name, tensor) pairs as HF-style safetensors shards; returns name → file.

    A shard is flushed before it would pass ``max_shard_bytes`` (a larger tensor gets a shard to
    itself), so memory holds one shard. The shard count is known only at the end: shards are
    written under provisional names and renamed ``model-0000i-of-0000N.safetensors``.
    """
    if max_shard_bytes <= 0:
        raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
    out = Path(out_dir)
    _remove_old_weights(out)
    provisional: list[tuple[Path, list[str]]] = []
    shard: dict[str, torch.Tensor] = {}
    seen: set[str] = set()
    size = total = 0

    def flush() -> None:
        path = out / f".shard-{len(provisional):05d}.safetensors.tmp"
        save_file(shard, str(path), metadata={"format": "pt"})  # transformers checks the format tag
        provisional.append((path, list(shard)))
        shard.clear()

    try:
        for name, t in tensors:
            nbytes = t.numel() * t.element_size()
            if shard and size + nbytes > max_shard_bytes:
                flush()
                size = 0
            if name in seen:
                raise ValueError(f"weight {name!r} was given twice")
            seen.add(name)
            shard[name] = t
            size, total = size + nbytes, total + nbytes
        if shard or not provisional:
            flush()
    except BaseException:
        for path, _ in provisional:  # no half-written export left behind to be mistaken for a whole one
            path.unlink(missing_ok=True)
        raise
    n = len(provisional)
    weight_map = {}
    for i, (path, names) in enumerate(provisional):
        final = WEIGHTS_NAME if n == 1 else f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        os.replace(path, out / final)
        weight_map.update(dict.fromkeys(names, final))
    if n > 1:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return weight_map


def _hf_stream(tensors: Iterable[tuple[str, torch.Tensor]], cfg: ModelConfig,
               dtype: torch.dtype) -> Iterator[tuple[str, torch.Tensor]]:
    for name, t in tensors:
        # A tied head is the embedding itself; transformers re-ties it from config.tie_word_embeddings.
        tied_head = cfg.tie_embeddings and name == "lm_head.weight"
        pieces = [] if tied_head else to_hf_tensors(name, t.detach(), cfg)
        # Split pieces are views of one tensor: safetensors refuses tensors that share memory, and a
        # view would keep the whole source alive, so those are copied; whole tensors pass as they are.
        owned = [(hf_name, part.to(device="cpu", dtype=dtype, memory_format=torch.contiguous_format,
                                   copy=len(pieces) > 1)) for hf_name, part in pieces]
        del t, pieces  # freed before the next one is read (a live model's parameter just loses a name)
        yield from owned


def export_tensors(tensors: Iterable[tuple[str, torch.Tensor]], cfg: ModelConfig, tokenizer: Tokenizer,
                   out_dir: str | Path, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
                   dtype: torch.dtype = torch.float32, chat_template: str | None = None,
                   stop_tokens: tuple[str, ...] = ()) -> Path:
    """Write a LlamaForCausalLM directory from our weights, given one at a time by parameter name.

    ``out_dir`` gets ``config.json``, ``generation_config.json``, the safetensors weights (sharded
    at ``max_shard_bytes``, stored as ``dtype``) and the tokenizer files; it loads with
    ``AutoModelForCausalLM.from_pretrained(out_dir)`` / ``AutoTokenizer.from_pretrained(out_dir)``.
    A fine-tuned model's ``chat_template`` goes into the tokenizer config (``apply_chat_template``
    then lays out conversations as in training); generation also stops at each of ``stop_tokens``
    present in the vocabulary (the caller names them: the end-of-turn token of our chat template).
    """
    from transformers import GenerationConfig, PreTrainedTokenizerFast

    tokens = export_tokens(tokenizer, cfg)  # before any weight is written: a bad id fails fast
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weight_map = write_safetensors_shards(_hf_stream(tensors, cfg, dtype), out, max_shard_bytes)
    missing, unexpected = sorted(hf_names(cfg) - set(weight_map)), sorted(set(weight_map) - hf_names(cfg))
    if missing or unexpected:
        raise ValueError(f"weight mapping to LlamaForCausalLM failed: missing={missing} unexpected={unexpected}")
    config = llama_config(cfg, tokens)
    config.architectures = ["LlamaForCausalLM"]  # vLLM picks its model class from this
    config.dtype = dtype
    config.save_pretrained(out)
    generation = GenerationConfig.from_model_config(config)
    stop_ids = [i for i in map(tokenizer.token_to_id, stop_tokens) if i is not None]
    if stop_ids:
        generation.eos_token_id = [config.eos_token_id, *stop_ids]
    generation.save_pretrained(out)
    # Special strings in a prompt are the special tokens (FIM prompts, chat templates), as every HF/vLLM
    # client assumes; our own pipeline keeps them text when it encodes data (tokenizer/io.py).
    # model_max_length is the context window, so truncation and length checks in HF pipelines are real.
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=tokens.eos, bos_token=tokens.eos,
                                   pad_token=tokens.pad, split_special_tokens=False, model_max_length=cfg.max_seq_len)
    if chat_template is not None:
        fast.chat_template = chat_template
    fast.save_pretrained(out)
    return out


def export_hf(model: Transformer, tokenizer: Tokenizer, out_dir: str | Path,
              max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, dtype: torch.dtype = torch.float32) -> Path:
    """``export_tensors`` for a model in memory (same files, same writer)."""
    return export_tensors(model.named_parameters(), model.cfg, tokenizer, out_dir, max_shard_bytes, dtype)


def _hf_eos_id(value: int | list[int] | None, path: str | Path) -> int:
    """The end-of-text id of an HF config (the first of a list); none is an error, not a guessed id."""
    ids = value if isinstance(value, list) else [value]
    if not ids or ids[0] is None:
        raise ValueError(f"{path}/config.json has no eos_token_id; set it to the tokenizer's end-of-text id")
    return int(ids[0])


def hf_model_config(path: str | Path) -> ModelConfig:
    """Our ``ModelConfig`` for a Llama directory, read from its ``config.json`` alone (no weights)."""
    from transformers import LlamaConfig

    c = LlamaConfig.from_pretrained(str(path))
    default_ffn = ModelConfig(d_model=c.hidden_size, n_heads=c.num_attention_heads).ffn_dim
    return ModelConfig(
        d_model=c.hidden_size, n_layers=c.num_hidden_layers, n_heads=c.num_attention_heads,
        n_kv_heads=c.num_key_value_heads, vocab_size=c.vocab_size, max_seq_len=c.max_position_embeddings,
        ffn_hidden_size=None if c.intermediate_size == default_ffn else c.intermediate_size, rope_theta=c.rope_theta,
        norm_eps=c.rms_norm_eps, tie_embeddings=bool(c.tie_word_embeddings), init_std=c.initializer_range,
        eos_id=_hf_eos_id(c.eos_token_id, path),
    )


def from_hf(path: str | Path) -> Transformer:
    """Our ``Transformer`` with the weights of an exported (or any compatible) Llama directory."""
    from transformers import LlamaForCausalLM

    cfg = hf_model_config(path)
    hf = LlamaForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model = Transformer(cfg)
    ours = from_hf_state(hf.state_dict(), model)
    missing, _ = model.load_state_dict(ours, strict=False)
    missing = [m for m in missing if not (cfg.tie_embeddings and m == "lm_head.weight")]
    if missing:
        raise ValueError(f"{path} lacks weights for {missing}")
    return model
