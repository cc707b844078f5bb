"""What keeps one big or slow request from stalling the server (``scripts/serve.py`` operations flags).

* The body is capped (413) on its ``Content-Length`` before anything is read, and again while
  reading, for chunked bodies that announce no length.
* A string prompt that must be longer than the context window is refused (400) by its length
  alone, before tokenizing: no token is longer than the vocabulary's longest token in bytes, and a
  string has at least as many UTF-8 bytes as characters, so ``len(prompt) > max_seq_len ×
  longest`` proves ``tokens > max_seq_len``. Tokenizers with a normalizer (which may drop
  characters) skip this bound and rely on the exact check after tokenizing.
* Parsing and tokenizing run on a worker thread (``asyncio.to_thread``), so a long prompt never
  holds the event loop that streams other requests' tokens.
* Each request has a wall-clock limit from arrival (504 past it; its job is cancelled).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from tokenizers import Tokenizer

from llmfoundry_lite.serve.errors import APIError


@dataclass(frozen=True)
class OpsSettings:
    """The operational limits one app enforces (``ServeConfig`` fields of the same names)."""

    api_key: str | None = None
    max_request_bytes: int = 4 * 2**20
    request_timeout_s: float = 600.0
    stuck_after_s: float = 30.0
    log_prompts: bool = False


def too_large(size: str, limit: int) -> APIError:
    return APIError(413, f"request body is {size} bytes; this server accepts at most {limit} "
                    "(--max-request-bytes)", None, "request_too_large")  # fmt: skip


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or a 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(declared, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"over {limit}", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def longest_token_bytes(tokenizer: Tokenizer, table: list[bytes | None]) -> int | None:
    """Bytes in the vocabulary's longest token, or None when a normalizer makes the bound unsafe."""
    if tokenizer.normalizer is not None:
        return None
    return max((len(b) for b in table if b), default=1)


def check_prompt_chars(prompts: list[str], max_seq_len: int, longest: int | None) -> None:
    """A 400 for a string prompt that cannot fit ``max_seq_len`` tokens, decided without tokenizing."""
    if longest is None:
        return
    for text in prompts:
        if len(text) > max_seq_len * longest:
            raise APIError(400, f"this model's maximum context length is {max_seq_len} tokens, and a prompt of "
                           f"{len(text)} characters is longer than {max_seq_len} tokens of at most {longest} "
                           "bytes each; shorten the prompt", "prompt", "context_length_exceeded")  # fmt: skip
