"""The ``/v1/completions`` request as OpenAI defines it, checked field by field, and its responses.

Unknown fields are refused (naming them) rather than ignored, so a client never believes a
setting took effect when it did not. Fields this server does not implement (``echo``,
``logprobs``, ``best_of``, penalties, ``logit_bias``) are accepted only with their no-op value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from tokenizers import Tokenizer

from llmfoundry_lite.eval.infill import InfillTask, psm_ids
from llmfoundry_lite.serve.errors import APIError
from llmfoundry_lite.serve.job import SamplingParams
from llmfoundry_lite.tokenizer.io import clean_text, encode_texts

MAX_STOPS = 4
DEFAULT_MAX_TOKENS = 16
"""OpenAI's default completion length."""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool = False
    """Send one last chunk with ``usage`` and no choices before ``[DONE]``."""


class CompletionRequest(BaseModel):
    """The body of ``POST /v1/completions`` (strict types: ``"16"`` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    model: str
    prompt: str | list[str]
    suffix: str | None = None
    max_tokens: int | None = DEFAULT_MAX_TOKENS
    temperature: float | None = 1.0
    top_p: float | None = 1.0
    n: int | None = 1
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    user: str | None = None
    """An end-user id for the caller's logs; it changes nothing."""
    echo: bool | None = None
    logprobs: int | None = None
    best_of: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None


NO_OP = {"echo": (None, False), "logprobs": (None,), "best_of": (None, 1), "frequency_penalty": (None, 0.0),
         "presence_penalty": (None, 0.0), "logit_bias": (None, {})}  # fmt: skip
"""Unimplemented fields and the values that ask for nothing."""


@dataclass(frozen=True)
class ServedModel:
    """What request checks need to know about the model behind the engine."""

    name: str
    tokenizer: Tokenizer
    max_seq_len: int
    eos_id: int
    max_n: int


def parse_request(raw: bytes) -> CompletionRequest:
    """The request from raw body bytes; malformed JSON, wrong types and unknown fields are 400s."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise APIError(400, f"request body is not valid JSON: {err}", None, "invalid_json") from err
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", None, "invalid_json")
    try:
        req = CompletionRequest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else None
        if first["type"] == "extra_forbidden":
            known = sorted(CompletionRequest.model_fields)
            raise APIError(400, f"unknown or unsupported field {param!r}; this server accepts {known}", param) from err
        raise APIError(400, f"{param}: {first['msg']}", param) from err
    for name, allowed in NO_OP.items():
        if getattr(req, name) not in allowed:
            raise APIError(400, f"{name}={getattr(req, name)!r} is not supported by this server; omit it", name)
    return req


def _check(ok: bool, message: str, param: str) -> None:
    if not ok:
        raise APIError(400, message, param)


def sampling_params(req: CompletionRequest, served: ServedModel) -> SamplingParams:
    """Checked sampling settings; each bad value is a 400 naming its field."""
    max_tokens = DEFAULT_MAX_TOKENS if req.max_tokens is None else req.max_tokens
    _check(1 <= max_tokens <= served.max_seq_len, f"max_tokens must be in 1..{served.max_seq_len} "
           f"(the context window), got {max_tokens}", "max_tokens")  # fmt: skip
    temperature = 1.0 if req.temperature is None else req.temperature
    _check(0.0 <= temperature <= 2.0, f"temperature must be in [0, 2], got {temperature}", "temperature")
    top_p = 1.0 if req.top_p is None else req.top_p
    _check(0.0 < top_p <= 1.0, f"top_p must be in (0, 1], got {top_p}", "top_p")
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    _check(len(stops) <= MAX_STOPS, f"stop takes at most {MAX_STOPS} sequences, got {len(stops)}", "stop")
    _check(all(stops), "stop sequences must not be empty", "stop")
    return SamplingParams(max_tokens, temperature, top_p, req.seed, tuple(clean_text(s) for s in stops))


def choice_count(req: CompletionRequest, served: ServedModel) -> int:
    n = 1 if req.n is None else req.n
    _check(1 <= n <= served.max_n, f"n must be in 1..{served.max_n} (the server's batch size), got {n}", "n")
    _check(req.stream_options is None or bool(req.stream), "stream_options needs stream=true", "stream_options")
    return n


def prompt_ids(req: CompletionRequest, served: ServedModel, max_tokens: int) -> list[int]:
    """Token ids the model continues: the prompt, or with ``suffix`` the PSM infilling prompt
    ``<fim_prefix> prompt <fim_suffix> suffix <fim_middle>`` the FIM objective trains on."""
    if isinstance(req.prompt, list):
        _check(len(req.prompt) == 1, f"prompt lists must hold exactly one string, got {len(req.prompt)}", "prompt")
    prompt = req.prompt[0] if isinstance(req.prompt, list) else req.prompt
    if req.suffix is not None:
        task = InfillTask("request", "request", clean_text(prompt), "", clean_text(req.suffix), "")
        try:
            ids = psm_ids(served.tokenizer, task)
        except ValueError as err:
            raise APIError(400, f"this model cannot infill: {err}", "suffix") from err
    else:
        # Empty prompt: start a new document, as after an end-of-text in training.
        ids = encode_texts(served.tokenizer, [prompt])[0] or [served.eos_id]
    if len(ids) + max_tokens > served.max_seq_len:
        raise APIError(400, f"this model's maximum context length is {served.max_seq_len} tokens, but "
                       f"{len(ids) + max_tokens} were requested ({len(ids)} in the prompt, {max_tokens} "
                       "for the completion); shorten the prompt or lower max_tokens", "prompt",
                       "context_length_exceeded")  # fmt: skip
    return ids


def completion_body(cid: str, created: int, model: str, choices: list[dict[str, Any]],
                    usage: dict[str, int] | None) -> dict[str, Any]:
    """A ``text_completion`` object: the whole response, or one stream chunk of it."""
    body: dict[str, Any] = {"id": cid, "object": "text_completion", "created": created, "model": model,
                            "choices": choices}  # fmt: skip
    if usage is not None:
        body["usage"] = usage
    return body


def choice_body(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip
