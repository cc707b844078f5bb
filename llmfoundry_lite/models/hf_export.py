"""Export to / import from Hugging Face ``LlamaForCausalLM`` (same math: RoPE halves layout,
RMSNorm, SwiGLU, no biases), so vLLM and the transformers ecosystem can load our models."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.tokenizer.special import EOS, PAD

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


def to_hf_state(ours: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Our state dict → LlamaForCausalLM's (fused q/k/v and gate/up split back into HF's matrices)."""
    out = {}
    for name, t in ours.items():
        if name in _TOP_NAMES:
            out[_TOP_NAMES[name]] = t
            continue
        _, layer, rest = name.split(".", 2)  # blocks.{i}.<rest>
        parts = t.split(_row_split(name, cfg)) if _row_split(name, cfg) else [t]
        for hf_name, part in zip(_LAYER_NAMES[rest], parts, strict=True):
            out[f"model.layers.{layer}.{hf_name}"] = part
    return out


def from_hf_state(hf: dict[str, torch.Tensor], model: Transformer) -> dict[str, torch.Tensor]:
    """LlamaForCausalLM's state dict → ours (the inverse of ``to_hf_state``)."""
    out = {}
    for name, _ in model.named_parameters():
        if name in _TOP_NAMES:
            out[name] = hf[_TOP_NAMES[name]]
            continue
        _, layer, rest = name.split(".", 2)
        out[name] = torch.cat([hf[f"model.layers.{layer}.{n}"] for n in _LAYER_NAMES[rest]])
    return out


def llama_config(cfg: ModelConfig):  # -> transformers.LlamaConfig
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ffn_dim,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.kv_heads,
        max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings, attention_bias=False, mlp_bias=False, hidden_act="silu",
        initializer_range=cfg.init_std, eos_token_id=cfg.eos_id, bos_token_id=cfg.eos_id, pad_token_id=1,
    )


def export_hf(model: Transformer, tokenizer: Tokenizer, out_dir: str | Path) -> Path:
    """Write ``config.json``, ``model.safetensors`` and tokenizer files loadable by
    ``AutoModelForCausalLM.from_pretrained(out_dir)`` / ``AutoTokenizer.from_pretrained(out_dir)``."""
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    hf = LlamaForCausalLM(llama_config(model.cfg))
    ours = {n: p.detach().float().cpu() for n, p in model.named_parameters()}
    if model.cfg.tie_embeddings:
        ours.setdefault("lm_head.weight", ours["embed.weight"])
    hf_state = to_hf_state(ours, model.cfg)
    missing, unexpected = hf.load_state_dict(hf_state, strict=False)
    missing = [m for m in missing if not (model.cfg.tie_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"weight mapping to LlamaForCausalLM failed: missing={missing} unexpected={unexpected}")
    hf.save_pretrained(out)
    # split_special_tokens: literal "<fim_prefix>" in code stays text under transformers too.
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS, pad_token=PAD,
                                   split_special_tokens=True)
    fast.save_pretrained(out)
    return out


def from_hf(path: str | Path) -> Transformer:
    """Our ``Transformer`` with the weights of an exported (or any compatible) Llama directory."""
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    c = hf.config
    default_ffn = ModelConfig(d_model=c.hidden_size, n_heads=c.num_attention_heads).ffn_dim
    cfg = ModelConfig(
        d_model=c.hidden_size, n_layers=c.num_hidden_layers, n_heads=c.num_attention_heads,
        n_kv_heads=c.num_key_value_heads, vocab_size=c.vocab_size, max_seq_len=c.max_position_embeddings,
        ffn_hidden_size=None if c.intermediate_size == default_ffn else c.intermediate_size, rope_theta=c.rope_theta, norm_eps=c.rms_norm_eps,
        tie_embeddings=bool(c.tie_word_embeddings), init_std=c.initializer_range, eos_id=c.eos_token_id if c.eos_token_id is not None else 0,
    )
    model = Transformer(cfg)
    ours = from_hf_state(hf.state_dict(), model)
    missing, _ = model.load_state_dict(ours, strict=False)
    missing = [m for m in missing if not (cfg.tie_embeddings and m == "lm_head.weight")]
    if missing:
        raise ValueError(f"{path} lacks weights for {missing}")
    return model
