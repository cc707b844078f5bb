"""The HTTP API: ``GET /health``, ``GET /v1/models``, ``POST /v1/completions`` (OpenAI conventions).

Handlers only check requests and move deltas: generation happens on the engine's thread, which
hands each ``Delta`` to the request's asyncio queue. A streamed completion is sent as
server-sent events (``data: {chunk}``, then ``data: [DONE]``); a client that goes away, streamed
or not, has its job cancelled so its KV-cache slots are freed for others.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from llmfoundry_lite.serve.choice import Delta
from llmfoundry_lite.serve.errors import APIError, error_body, install_error_handlers
from llmfoundry_lite.serve.job import EngineBusy, Job
from llmfoundry_lite.serve.protocol import (
    ServedModel,
    choice_body,
    choice_count,
    completion_body,
    parse_request,
    prompt_ids,
    sampling_params,
    usage_body,
)

DISCONNECT_POLL_S = 0.5
"""How often a waiting non-streamed request checks that its client is still connected."""


class Engine(Protocol):
    """What the API needs from a backend (``engine.ContinuousEngine``, ``ct2.CT2Engine``)."""

    def submit(self, job: Job) -> None: ...
    def cancel(self, job: Job) -> None: ...
    def stats(self) -> dict[str, int]: ...


def _sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


class _Request:
    """One accepted completion request: its job, its deltas, what has been produced so far."""

    def __init__(self, engine: Engine, job: Job, deltas: asyncio.Queue[Delta], model: str) -> None:
        self.engine, self.job, self.deltas, self.model = engine, job, deltas, model
        self.id, self.created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        self.texts = [""] * job.n
        self.finish: list[str | None] = [None] * job.n
        self.completion_tokens = 0

    @property
    def done(self) -> bool:
        return all(f is not None for f in self.finish)

    def take(self, d: Delta) -> None:
        if d.error is not None:
            raise APIError(500, f"generation failed: {d.error}", None, "engine_error")
        self.texts[d.index] += d.text
        self.completion_tokens += len(d.token_ids)
        self.finish[d.index] = d.finish_reason

    def usage(self) -> dict[str, int]:
        return usage_body(len(self.job.prompt_ids), self.completion_tokens)

    async def collect(self, request: Request) -> dict[str, Any]:
        try:
            while not self.done:
                try:
                    self.take(await asyncio.wait_for(self.deltas.get(), DISCONNECT_POLL_S))
                except TimeoutError:
                    if await request.is_disconnected():
                        raise APIError(499, "client disconnected") from None
                while not self.deltas.empty():  # what else is in: no timer per token
                    self.take(self.deltas.get_nowait())
            choices = [choice_body(i, t, f) for i, (t, f) in enumerate(zip(self.texts, self.finish, strict=True))]
            return completion_body(self.id, self.created, self.model, choices, self.usage())
        finally:
            if not self.done:
                self.engine.cancel(self.job)

    def _ready(self, first: Delta) -> list[Delta]:
        """``first`` and every delta already queued behind it, merged per choice: under load one
        event carries what several engine steps produced (as vLLM's per-step chunks do), so
        sending costs no more as the batch grows."""
        merged: dict[int, Delta] = {}
        d: Delta | None = first
        while d is not None:
            if d.error is not None:
                return [*merged.values(), d]
            seen = merged.get(d.index)
            merged[d.index] = d if seen is None else Delta(
                d.index, seen.text + d.text, seen.token_ids + d.token_ids, d.finish_reason)
            try:
                d = self.deltas.get_nowait()
            except asyncio.QueueEmpty:
                d = None
        return list(merged.values())

    async def stream(self, include_usage: bool) -> AsyncIterator[str]:
        try:
            while not self.done:
                for d in self._ready(await self.deltas.get()):
                    try:
                        self.take(d)
                    except APIError as err:
                        yield _sse(error_body(err.status, err.message, err.param, err.code))
                        return
                    if d.text or d.finish_reason:
                        chunk = [choice_body(d.index, d.text, d.finish_reason)]
                        yield _sse(completion_body(self.id, self.created, self.model, chunk, None))
            if include_usage:
                yield _sse(completion_body(self.id, self.created, self.model, [], self.usage()))
            yield "data: [DONE]\n\n"
        finally:
            if not self.done:  # the client left (or the send failed): free the slots now
                self.engine.cancel(self.job)


def build_app(engine: Engine, served: ServedModel) -> FastAPI:
    """The FastAPI application serving ``served`` through ``engine``."""
    app = FastAPI(title="llmfoundry_lite completions", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    started = int(time.time())

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": served.name, **engine.stats()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": served.name, "object": "model", "created": started, "owned_by": "llmfoundry_lite",
                "max_model_len": served.max_seq_len}  # fmt: skip
        return {"object": "list", "data": [card]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = parse_request(await request.body())
        if req.model != served.name:
            raise APIError(404, f"model {req.model!r} does not exist; this server serves {served.name!r}",
                           "model", "model_not_found")  # fmt: skip
        params = sampling_params(req, served)
        n = choice_count(req, served)
        ids = prompt_ids(req, served, params.max_tokens)
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[Delta] = asyncio.Queue()
        job = Job(ids, n, params, lambda d: loop.call_soon_threadsafe(deltas.put_nowait, d))
        try:
            engine.submit(job)
        except EngineBusy as err:
            raise APIError(429, f"server busy: {err}; retry later", None, "server_busy") from err
        pending = _Request(engine, job, deltas, served.name)
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(pending.stream(include_usage), media_type="text/event-stream")
        return JSONResponse(await pending.collect(request))

    return app
