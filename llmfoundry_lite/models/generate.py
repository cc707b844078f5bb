"""Sampling with a KV cache: greedy (temperature 0) or temperature + nucleus (top-p)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from llmfoundry_lite.models.transformer import KVCache, Transformer


def _pick(logits_BV: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Next token per row (B,) from last-position logits (B, V)."""
    if temperature <= 0.0:
        return logits_BV.argmax(dim=-1)
    probs_BV = torch.softmax(logits_BV.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_BV, order_BV = probs_BV.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the top token always stays).
        outside_BV = sorted_BV.cumsum(dim=-1) - sorted_BV >= top_p
        sorted_BV = sorted_BV.masked_fill(outside_BV, 0.0)
        choice_B1 = torch.multinomial(sorted_BV, 1, generator=generator)
        return order_BV.gather(-1, choice_B1).squeeze(-1)
    return torch.multinomial(probs_BV, 1, generator=generator).squeeze(-1)


def _restrict(logits_BV: torch.Tensor, masks: list[torch.Tensor | None]) -> torch.Tensor:
    """``logits_BV`` with the tokens outside each row's mask (shorter than V: the rest is outside) at -inf."""
    if all(m is None for m in masks):
        return logits_BV
    logits_BV = logits_BV.clone()
    for row, mask in enumerate(masks):
        if mask is not None:
            keep_V = torch.zeros(logits_BV.shape[-1], dtype=torch.bool, device=logits_BV.device)
            keep_V[: mask.numel()] = mask.to(logits_BV.device)
            logits_BV[row].masked_fill_(~keep_V, float("-inf"))
    return logits_BV


@torch.inference_mode()
def generate(
    model: Transformer,
    input_ids: torch.LongTensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    eos_id: int | None = None,
    stop: Callable[[list[int]], bool] | None = None,
    generator: torch.Generator | None = None,
    allowed: Callable[[list[int]], torch.Tensor | None] | None = None,
) -> list[list[int]]:
    """Continue each row of ``input_ids`` (B, T) by up to ``max_new_tokens`` tokens.

    Rows share one prompt length (no padding); to complete prompts of different lengths,
    call once per prompt with the samples of that prompt as rows. A row stops after
    producing ``eos_id`` (not included in its output) or once ``stop(row_new_tokens)`` is
    True (the tokens that triggered it are kept, so the caller can cut the text). Returns
    the new tokens of each row. ``generator`` seeds sampling for reproducible draws; it
    must live on the model's device. ``allowed(row_new_tokens)`` may restrict a row's next token
    to a bool mask over the tokenizer's vocabulary (None: any token), e.g. token healing.
    """
    model.eval()
    device = next(model.parameters()).device
    input_ids = input_ids.to(device)
    B, T = input_ids.shape
    dtype = next(model.parameters()).dtype
    cache = KVCache(model.cfg, B, T + max_new_tokens, device, dtype)
    out: list[list[int]] = [[] for _ in range(B)]
    done = [False] * B
    logits_BTV = model(input_ids, cache=cache)
    for _ in range(max_new_tokens):
        logits_BV = logits_BTV[:, -1]
        if allowed is not None:
            logits_BV = _restrict(logits_BV, [None if done[row] else allowed(out[row]) for row in range(B)])
        next_B = _pick(logits_BV, temperature, top_p, generator)
        for row, token in enumerate(next_B.tolist()):
            if done[row]:
                continue
            if eos_id is not None and token == eos_id:
                done[row] = True
                continue
            out[row].append(token)
            if stop is not None and stop(out[row]):
                done[row] = True
        if all(done):
            break
        logits_BTV = model(next_B[:, None], cache=cache)  # (B, 1, V); finished rows run along, ignored
    return out
