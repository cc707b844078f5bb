"""The ``/v1/completions`` request as OpenAI defines it, checked field by field, and its responses.

Unknown fields are refused (naming them) rather than ignored, so a client never believes a
setting took effect when it did not. Fields this server does not implement (``best_of``,
penalties, ``logit_bias``) are accepted only with their no-op value.

``prompt`` takes every form OpenAI's legacy endpoint takes: a string, a list of strings, a list of
token ids, or a list of lists of token ids (what evaluation harnesses send). k prompts with ``n``
choices each give k·n choices, choice ``p·n + j`` being prompt p's j-th. ``stop`` lists have no
length limit (OpenAI's 4 is too few for code: HumanEval's stop list alone has more).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from tokenizers import Tokenizer

from llmfoundry_lite.serve.errors import APIError, field_error
from llmfoundry_lite.serve.fim import AUTO, Fim, no_fim_message, resolve_fim
from llmfoundry_lite.serve.job import SamplingParams
from llmfoundry_lite.tokenizer.io import clean_text, encode_texts

MAX_LOGPROBS = 20
"""The most top alternatives ``logprobs`` may ask for per token (OpenAI allows 5, vLLM 20)."""
DEFAULT_MAX_TOKENS = 16
"""OpenAI's default completion length."""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool = False
    """Send one last chunk with ``usage`` and no choices before ``[DONE]``."""


class CompletionRequest(BaseModel):
    """The body of ``POST /v1/completions`` (strict types: ``"16"`` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    model: str | None = None
    """The model or LoRA adapter to use; omitted (or the server's own name), ``--ab`` splits the request
    among the variants, and without a split the base serves it."""
    prompt: str | list[str] | list[int] | list[list[int]]
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
    """An opaque end-user id: ``--ab`` keeps each user on one variant by it, and the feedback store keeps
    it hashed with the completion (``POST /v1/feedback`` takes the same id)."""
    language: str | None = None
    """Extension field: the language of the file being edited (``python``, or a file name such as
    ``main.rs``), for acceptance rates by language; omitted, it is guessed (``serve/language.py``)."""
    echo: bool | None = None
    logprobs: int | None = None
    best_of: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None


NO_OP = {"best_of": (None, 1), "frequency_penalty": (None, 0.0), "presence_penalty": (None, 0.0),
         "logit_bias": (None, {})}  # fmt: skip
"""Unimplemented fields and the values that ask for nothing."""


@dataclass(frozen=True)
class ServedModel:
    """What request checks need to know about the model behind the engine."""

    name: str
    tokenizer: Tokenizer
    max_seq_len: int
    eos_id: int
    max_n: int
    adapters: tuple[str, ...] = ()
    """Names of the LoRA adapters served beside the base (``--lora``); a request's ``model`` picks one."""
    fim_template: str = AUTO
    """``--fim-template``: how ``suffix`` requests are laid out (``fim.FIM_TEMPLATES``)."""
    fim: Fim | None = field(init=False, default=None)
    """The template resolved against ``tokenizer`` (None: no FIM tokens, ``suffix`` is refused)."""

    def __post_init__(self) -> None:  # an override the tokenizer cannot honour fails at start-up
        object.__setattr__(self, "fim", resolve_fim(self.tokenizer, self.fim_template))

    def adapter_of(self, model: str) -> str | None:
        """The adapter a request's ``model`` names, None for the base; a 404 listing what is served otherwise."""
        if model == self.name:
            return None
        if model in self.adapters:
            return model
        raise APIError(404, f"model {model!r} does not exist; this server serves {[self.name, *self.adapters]}",
                       "model", "model_not_found")  # fmt: skip


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
        known = sorted(CompletionRequest.model_fields)
        raise field_error(err, lambda p: f"unknown or unsupported field {p!r}; this server accepts {known}") from err
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
    least = 0 if req.echo else 1  # 0 with echo: only score the prompt
    _check(least <= max_tokens <= served.max_seq_len, f"max_tokens must be in {least}..{served.max_seq_len} "
           f"(the context window; 0 only with echo=true), got {max_tokens}", "max_tokens")  # fmt: skip
    temperature = 1.0 if req.temperature is None else req.temperature
    _check(0.0 <= temperature <= 2.0, f"temperature must be in [0, 2], got {temperature}", "temperature")
    top_p = 1.0 if req.top_p is None else req.top_p
    _check(0.0 < top_p <= 1.0, f"top_p must be in (0, 1], got {top_p}", "top_p")
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    _check(all(stops), "stop sequences must not be empty", "stop")
    _check(req.logprobs is None or 0 <= req.logprobs <= MAX_LOGPROBS,
           f"logprobs must be in 0..{MAX_LOGPROBS}, got {req.logprobs}", "logprobs")  # fmt: skip
    fim_ends = served.fim.end_ids if req.suffix is not None and served.fim is not None else frozenset()
    return SamplingParams(max_tokens, temperature, top_p, req.seed, tuple(clean_text(s) for s in stops),
                          req.logprobs, bool(req.echo), end_ids=fim_ends)  # fmt: skip


def choice_count(req: CompletionRequest, served: ServedModel) -> int:
    n = 1 if req.n is None else req.n
    _check(1 <= n <= served.max_n, f"n must be in 1..{served.max_n} (the server's batch size), got {n}", "n")
    _check(req.stream_options is None or bool(req.stream), "stream_options needs stream=true", "stream_options")
    return n


def prompt_ids(req: CompletionRequest, served: ServedModel, max_tokens: int) -> list[list[int]]:
    """Token ids of each prompt the model continues (one or more: see ``prompt``), each checked
    against the context window."""
    prompts: list[str] | list[list[int]]
    if isinstance(req.prompt, str):
        prompts = [req.prompt]
    elif req.prompt and all(isinstance(t, int) for t in req.prompt):
        prompts = [req.prompt]  # one prompt as token ids
    else:
        prompts = req.prompt
    _check(len(prompts) > 0, "prompt must not be an empty list", "prompt")
    all_ids = [_one_prompt_ids(p, req, served) for p in prompts]
    for p, ids in enumerate(all_ids):
        if len(ids) + max_tokens > served.max_seq_len:
            which = f"prompt {p} has" if len(all_ids) > 1 else "the prompt has"
            raise APIError(400, f"this model's maximum context length is {served.max_seq_len} tokens, but "
                           f"{len(ids) + max_tokens} were requested ({which} {len(ids)}, {max_tokens} "
                           "for the completion); shorten the prompt or lower max_tokens", "prompt",
                           "context_length_exceeded")  # fmt: skip
    return all_ids


def _one_prompt_ids(prompt: str | list[int], req: CompletionRequest, served: ServedModel) -> list[int]:
    """One prompt's ids: token ids as given (checked against the vocabulary), text encoded, or with
    ``suffix`` the infilling prompt in the model's own FIM layout (``fim``: ours is
    ``<fim_prefix> prompt <fim_suffix> suffix <fim_middle>``, as the FIM objective trains)."""
    if not isinstance(prompt, str):
        vocab = served.tokenizer.get_vocab_size(with_added_tokens=True)
        _check(len(prompt) > 0, "a token-id prompt must not be empty", "prompt")
        bad = [t for t in prompt if not 0 <= t < vocab]
        _check(not bad, f"token ids must be in 0..{vocab - 1} (this model's vocabulary), got {bad[:5]}", "prompt")
        _check(req.suffix is None, "suffix needs a text prompt, not token ids", "suffix")
        return list(prompt)
    if req.suffix is not None:
        _check(served.fim is not None, no_fim_message(), "suffix")
        return served.fim.prompt_ids(prompt, req.suffix)  # type: ignore[union-attr]
    # Empty prompt: start a new document, as after an end-of-text in training.
    return encode_texts(served.tokenizer, [prompt])[0] or [served.eos_id]


def completion_body(cid: str, created: int, model: str, choices: list[dict[str, Any]],
                    usage: dict[str, int] | None) -> dict[str, Any]:
    """A ``text_completion`` object: the whole response, or one stream chunk of it."""
    body: dict[str, Any] = {"id": cid, "object": "text_completion", "created": created, "model": model,
                            "choices": choices}  # fmt: skip
    if usage is not None:
        body["usage"] = usage
    return body


def choice_body(index: int, text: str, finish_reason: str | None,
                logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip
