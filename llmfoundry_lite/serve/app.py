"""The HTTP API: ``POST /v1/completions``, ``GET /v1/models`` (OpenAI conventions), and for operators
``GET /health`` (engine thread alive and stepping), ``GET /ready`` (model loaded, not draining) and
``GET /metrics`` (Prometheus); with a feedback store, ``POST /v1/feedback`` (events on a completion's
choices) and ``GET /dashboard`` (acceptance by variant and language, ``serve/dashboard.py``).

Handlers only check requests and move deltas: generation happens on the engine's thread, which
hands each ``Delta`` to the request's asyncio queue. A streamed completion is sent as
server-sent events (``data: {chunk}``, then ``data: [DONE]``). A client that goes away has its
jobs cancelled at once so its KV-cache slots are freed for others: a non-streamed request
watches the connection in its own task (``request.Pending``) while it waits for tokens, a stream
is cancelled by Starlette's own disconnect listener. Every request ends in one log line
(``llmfoundry_lite.serve.requests``) and in the metrics, whatever its outcome; an answered one also
in the feedback store, before its response is sent (``serve/feedback.py``). ``--ab`` picks the
variant of a request that names no model (``serve/ab.py``); the response's ``model`` names it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from llmfoundry_lite.serve import language
from llmfoundry_lite.serve.ab import ABSplit, route
from llmfoundry_lite.serve.auth import BearerAuth
from llmfoundry_lite.serve.choice import Delta, decode_table
from llmfoundry_lite.serve.errors import APIError, install_error_handlers
from llmfoundry_lite.serve.feedback import FeedbackRecorder, parse_feedback
from llmfoundry_lite.serve.feedback_store import CompletionRecord
from llmfoundry_lite.serve.job import EngineBusy, EngineDead, Job, SamplingParams
from llmfoundry_lite.serve.limits import OpsSettings, check_prompt_chars, longest_token_bytes, read_body
from llmfoundry_lite.serve.metrics import CONTENT_TYPE, ServerMetrics
from llmfoundry_lite.serve.protocol import (
    CompletionRequest,
    ServedModel,
    choice_count,
    parse_request,
    prompt_ids,
    sampling_params,
)
from llmfoundry_lite.serve.request import DONE, Engine, Pending, sink
from llmfoundry_lite.tokenizer.io import encode_texts

request_log = logging.getLogger("llmfoundry_lite.serve.requests")


@dataclass(frozen=True)
class Prepared:
    """A completion request read, routed and tokenized (``prepare``, on a worker thread)."""

    req: CompletionRequest
    model: str
    """The variant that serves it: the base's name or an adapter's."""
    assignment: str
    """How ``model`` was chosen (``feedback_schema.ASSIGNMENTS``)."""
    adapter: str | None
    params: SamplingParams
    n: int
    prompts: list[list[int]]
    language: str
    suffix_tokens: int


def build_app(engine: Engine, served: ServedModel, ops: OpsSettings | None = None,
              feedback: FeedbackRecorder | None = None, split: ABSplit | None = None) -> FastAPI:
    """The FastAPI application serving ``served`` through ``engine`` under the limits of ``ops``,
    recording completions and feedback in ``feedback`` (None: neither) and splitting requests that
    name no model by ``split`` (None: the base serves them)."""
    ops = ops or OpsSettings()
    if split is not None:
        split.check_served([served.name, *served.adapters])
    app = FastAPI(title="llmfoundry_lite completions", docs_url=None, redoc_url=None)
    metrics = ServerMetrics(engine.stats)
    install_error_handlers(app, metrics.error)
    if ops.api_key is not None:
        app.add_middleware(BearerAuth, api_key=ops.api_key, on_refuse=metrics.error)
    app.state.draining = False
    """Set on SIGTERM (``cli/serve.py``): ``/ready`` turns 503 so load balancers stop sending."""
    started = int(time.time())
    longest = longest_token_bytes(served.tokenizer, decode_table(served.tokenizer))

    def report(r: Pending, outcome: str) -> None:
        latency = time.monotonic() - r.arrived
        ttft = None if r.first_token_at is None else r.first_token_at - r.arrived
        prompt_tokens = sum(len(job.prompt_ids) for job in r.jobs)
        finish = ",".join(f or "-" for f in r.finish)
        metrics.observe(r.model, outcome, latency, ttft, prompt_tokens, r.completion_tokens, r.finish)
        text = f" prompt={r.prompt_text!r} suffix={r.suffix_text!r} completion={r.texts!r}" if ops.log_prompts else ""
        request_log.info("%s model=%s prompt_tokens=%d completion_tokens=%d latency_ms=%.1f ttft_ms=%s finish=%s "
                         "outcome=%s%s", r.id, r.model, prompt_tokens, r.completion_tokens, latency * 1e3,
                         "-" if ttft is None else f"{ttft * 1e3:.1f}", finish, outcome, text)  # fmt: skip

    @app.get("/health")
    async def health() -> JSONResponse:
        why = engine.health(ops.stuck_after_s)
        body = {"status": "ok" if why is None else "unhealthy", "model": served.name, **engine.stats()}
        if why is not None:
            body["reason"] = why
        return JSONResponse(body, status_code=200 if why is None else 503)

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if app.state.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ready", "model": served.name})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": served.name, "object": "model", "created": started, "owned_by": "llmfoundry_lite",
                "max_model_len": served.max_seq_len}  # fmt: skip
        adapters = [{**card, "id": name, "parent": served.name} for name in served.adapters]
        return {"object": "list", "data": [card, *adapters]}

    def prepare(raw: bytes) -> Prepared:
        """Everything that reads the body or tokenizes: run on a worker thread, never the event loop."""
        req = parse_request(raw)
        model, assignment = route(req.model, req.user, served.name, split)
        adapter = served.adapter_of(model)  # a 404 for a model this server does not serve
        params = sampling_params(req, served)
        n = choice_count(req, served)
        texts = [req.prompt] if isinstance(req.prompt, str) else [p for p in req.prompt if isinstance(p, str)]
        check_prompt_chars([*texts, req.suffix or ""], served.max_seq_len, longest)
        if req.language is not None and len(req.language) > language.MAX_LANGUAGE_CHARS:
            raise APIError(400, f"language must be at most {language.MAX_LANGUAGE_CHARS} characters", "language")
        prompts = prompt_ids(req, served, params.max_tokens)
        lang = language.normalise(req.language) if req.language is not None else \
            language.guess(texts[0], req.suffix) if texts else language.UNKNOWN  # fmt: skip
        suffix_tokens = len(encode_texts(served.tokenizer, [req.suffix])[0]) if req.suffix else 0
        return Prepared(req, model, assignment, adapter, params, n, prompts, lang, suffix_tokens)

    def record(p: Prepared, r: Pending) -> CompletionRecord:
        """What the feedback store keeps of an answered completion (texts as given: the recorder scrubs them)."""
        now = time.monotonic()
        ttft = None if r.first_token_at is None else (r.first_token_at - r.arrived) * 1e3
        prompt = p.req.prompt if isinstance(p.req.prompt, str) else None
        return CompletionRecord(
            id=r.id, created=time.time(), model=p.model, assignment=p.assignment, user=p.req.user,
            language=p.language, n_choices=len(r.finish), prompt_tokens=sum(len(job.prompt_ids) for job in r.jobs),
            suffix_tokens=p.suffix_tokens, completion_tokens=r.completion_tokens, latency_ms=(now - r.arrived) * 1e3,
            ttft_ms=ttft, finish_reasons=tuple(r.finish), prompt_text=prompt, suffix_text=p.req.suffix,
            texts=tuple(r.texts))

    async def recorded(p: Prepared, r: Pending, events):
        """A stream's events, its ``[DONE]`` held back until the completion is recorded."""
        async for event in events:
            if event == DONE and feedback is not None:
                await asyncio.to_thread(feedback.completion, record(p, r))
            yield event

    @app.post("/v1/completions")
    async def completions(request: Request):
        arrived = time.monotonic()
        p = await asyncio.to_thread(prepare, await read_body(request, ops.max_request_bytes))
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[Delta] = asyncio.Queue()
        jobs = [Job(ids, p.n, p.params, sink(loop, deltas, i * p.n), adapter=p.adapter)
                for i, ids in enumerate(p.prompts)]  # fmt: skip
        pending = Pending(engine, jobs, deltas, p.model, arrived, ops.request_timeout_s, report)
        if ops.log_prompts:
            pending.prompt_text, pending.suffix_text = p.req.prompt, p.req.suffix
        try:
            for job in jobs:
                engine.submit(job)
        except (EngineBusy, EngineDead) as err:
            pending.cancel()  # a list of prompts runs whole or not at all
            if isinstance(err, EngineDead):
                raise APIError(503, f"the engine has stopped: {err}", None, "engine_dead") from err
            raise APIError(429, f"server busy: {err}; retry later", None, "server_busy") from err
        if p.req.stream:
            include_usage = bool(p.req.stream_options and p.req.stream_options.include_usage)
            return StreamingResponse(recorded(p, pending, pending.stream(include_usage)),
                                     media_type="text/event-stream")  # fmt: skip
        body = await pending.collect(request)
        if feedback is not None:
            await asyncio.to_thread(feedback.completion, record(p, pending))
        return JSONResponse(body)

    def recorder() -> FeedbackRecorder:
        if feedback is None:
            raise APIError(404, "this server records no feedback (started with --feedback-db none)", None,
                           "feedback_disabled")  # fmt: skip
        return feedback

    @app.post("/v1/feedback")
    async def post_feedback(request: Request) -> JSONResponse:
        store = recorder()
        req = parse_feedback(await read_body(request, ops.max_request_bytes))
        new = await asyncio.to_thread(store.feedback, req)
        return JSONResponse({"object": "feedback", "id": req.id, "index": req.index, "event": req.event,
                             "status": "recorded" if new else "duplicate"})  # fmt: skip

    @app.get("/dashboard")
    async def dashboard() -> HTMLResponse:
        from llmfoundry_lite.serve.dashboard import render_dashboard

        store = recorder()

        def page() -> str:
            completions, events = store.store.tables()
            return render_dashboard(completions, events, title=f"{served.name}: completions and feedback",
                                    generated_at=time.time())  # fmt: skip

        return HTMLResponse(await asyncio.to_thread(page))

    return app
