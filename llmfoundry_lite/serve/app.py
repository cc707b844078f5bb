"""The HTTP API: ``POST /v1/completions``, ``GET /v1/models`` (OpenAI conventions), and for operators
``GET /health`` (engine thread alive and stepping), ``GET /ready`` (model loaded, not draining) and
``GET /metrics`` (Prometheus).

Handlers only check requests and move deltas: generation happens on the engine's thread, which
hands each ``Delta`` to the request's asyncio queue. A streamed completion is sent as
server-sent events (``data: {chunk}``, then ``data: [DONE]``). A client that goes away has its
jobs cancelled at once so its KV-cache slots are freed for others: a non-streamed request
watches the connection in its own task (``request.Pending``) while it waits for tokens, a stream
is cancelled by Starlette's own disconnect listener. Every request ends in one log line
(``llmfoundry_lite.serve.requests``) and in the metrics, whatever its outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmfoundry_lite.serve.auth import BearerAuth
from llmfoundry_lite.serve.choice import Delta, decode_table
from llmfoundry_lite.serve.errors import APIError, install_error_handlers
from llmfoundry_lite.serve.job import EngineBusy, EngineDead, Job
from llmfoundry_lite.serve.limits import OpsSettings, check_prompt_chars, longest_token_bytes, read_body
from llmfoundry_lite.serve.metrics import CONTENT_TYPE, ServerMetrics
from llmfoundry_lite.serve.protocol import ServedModel, choice_count, parse_request, prompt_ids, sampling_params
from llmfoundry_lite.serve.request import Engine, Pending, sink

request_log = logging.getLogger("llmfoundry_lite.serve.requests")


def build_app(engine: Engine, served: ServedModel, ops: OpsSettings | None = None) -> FastAPI:
    """The FastAPI application serving ``served`` through ``engine`` under the limits of ``ops``."""
    ops = ops or OpsSettings()
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

    def prepare(raw: bytes):
        """Everything that reads the body or tokenizes: run on a worker thread, never the event loop."""
        req = parse_request(raw)
        adapter = served.adapter_of(req.model)  # a 404 for a model this server does not serve
        params = sampling_params(req, served)
        n = choice_count(req, served)
        texts = [req.prompt] if isinstance(req.prompt, str) else [p for p in req.prompt if isinstance(p, str)]
        check_prompt_chars([*texts, req.suffix or ""], served.max_seq_len, longest)
        return req, adapter, params, n, prompt_ids(req, served, params.max_tokens)

    @app.post("/v1/completions")
    async def completions(request: Request):
        arrived = time.monotonic()
        req, adapter, params, n, prompts = await asyncio.to_thread(prepare, await read_body(request, ops.max_request_bytes))
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[Delta] = asyncio.Queue()
        jobs = [Job(ids, n, params, sink(loop, deltas, p * n), adapter=adapter) for p, ids in enumerate(prompts)]
        pending = Pending(engine, jobs, deltas, req.model, arrived, ops.request_timeout_s, report)
        if ops.log_prompts:
            pending.prompt_text, pending.suffix_text = req.prompt, req.suffix
        try:
            for job in jobs:
                engine.submit(job)
        except (EngineBusy, EngineDead) as err:
            pending.cancel()  # a list of prompts runs whole or not at all
            if isinstance(err, EngineDead):
                raise APIError(503, f"the engine has stopped: {err}", None, "engine_dead") from err
            raise APIError(429, f"server busy: {err}; retry later", None, "server_busy") from err
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(pending.stream(include_usage), media_type="text/event-stream")
        return JSONResponse(await pending.collect(request))

    return app
