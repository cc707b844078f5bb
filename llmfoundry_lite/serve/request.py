"""One accepted completion request inside the API: its jobs, the deltas the engine hands back, and how it ends.

``Pending.collect`` answers a non-streamed request, ``Pending.stream`` yields a streamed one's
server-sent events. Both wait for deltas with a deadline (``--request-timeout-s``: 504) and check
every ``LIVENESS_POLL_S`` that the engine thread is alive (503 once it has ended), so no request
waits forever. A non-streamed request watches its connection in its own task and cancels its jobs
the moment the client leaves; a stream is cancelled by Starlette's disconnect listener. Each ends
by calling its ``report`` once with its outcome (``ok``, ``cancelled``, ``timeout``, ``error``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from fastapi import Request

from llmfoundry_lite.serve.choice import Delta, Logprobs
from llmfoundry_lite.serve.errors import APIError, error_body
from llmfoundry_lite.serve.job import Job
from llmfoundry_lite.serve.protocol import choice_body, completion_body, usage_body

DONE = "data: [DONE]\n\n"
"""A stream's last event."""
LIVENESS_POLL_S = 1.0
"""How often a request waiting for tokens checks that the engine thread is still alive."""


class Engine(Protocol):
    """What the API needs from a backend (``engine.ContinuousEngine``, ``ct2.CT2Engine``)."""

    def submit(self, job: Job) -> None: ...
    def cancel(self, job: Job) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def health(self, stuck_after_s: float) -> str | None: ...


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read: ``receive`` now only
    reports the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def sink(loop: asyncio.AbstractEventLoop, deltas: asyncio.Queue[Delta], first: int) -> Callable[[Delta], None]:
    """Hands a job's deltas (from the engine's thread) to its request's queue, renumbering its
    choice i as the request's choice ``first + i``."""

    def put(d: Delta) -> None:
        loop.call_soon_threadsafe(deltas.put_nowait, dataclasses.replace(d, index=first + d.index) if first else d)

    return put


class Pending:
    """One accepted completion request: its jobs (one per prompt; their deltas carry request-wide
    choice indices), its deltas, what has been produced so far."""

    def __init__(self, engine: Engine, jobs: list[Job], deltas: asyncio.Queue[Delta], model: str,
                 arrived: float | None = None, timeout_s: float = math.inf,
                 report: Callable[[Pending, str], None] | None = None) -> None:
        self.engine, self.jobs, self.deltas, self.model = engine, jobs, deltas, model
        self.id, self.created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        self.arrived = time.monotonic() if arrived is None else arrived
        self.deadline = self.arrived + timeout_s
        self.first_token_at: float | None = None
        self.prompt_text: str | list | None = None
        self.suffix_text: str | None = None
        """The request's texts, kept only for ``--log-prompts``."""
        self._report = report
        """Called once when the request ends, with its outcome (``ok``, ``cancelled``, ``timeout``, ``error``)."""
        choices = sum(job.n for job in jobs)
        self.texts = [""] * choices
        self.finish: list[str | None] = [None] * choices
        scored = jobs[0].params.logprobs is not None
        self.logprobs: list[Logprobs | None] = [Logprobs() if scored else None for _ in range(choices)]
        self.completion_tokens = 0

    def cancel(self) -> None:
        for job in self.jobs:
            self.engine.cancel(job)

    @property
    def done(self) -> bool:
        return all(f is not None for f in self.finish)

    def take(self, d: Delta) -> None:
        if d.error is not None:
            raise APIError(500, f"generation failed: {d.error}", None, "engine_error")
        self.texts[d.index] += d.text
        self.completion_tokens += len(d.token_ids)
        if self.first_token_at is None and d.token_ids:
            self.first_token_at = time.monotonic()
        self.finish[d.index] = d.finish_reason
        if d.logprobs is not None and (scores := self.logprobs[d.index]) is not None:
            scores.extend(d.logprobs)

    def usage(self) -> dict[str, int]:
        return usage_body(sum(len(job.prompt_ids) for job in self.jobs), self.completion_tokens)

    def body(self, i: int) -> dict[str, Any]:
        scores = self.logprobs[i]
        return choice_body(i, self.texts[i], self.finish[i], None if scores is None else scores.body())

    async def _next(self) -> Delta:
        """The next delta: a 504 past the request's deadline, a 503 once the engine thread has ended."""
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise APIError(504, f"the request took longer than the server's limit of "
                               f"{self.deadline - self.arrived:g} s (--request-timeout-s)", None, "timeout")  # fmt: skip
            try:
                return await asyncio.wait_for(self.deltas.get(), min(left, LIVENESS_POLL_S))
            except TimeoutError:
                if self.deltas.empty() and (why := self.engine.health(math.inf)) is not None:
                    raise APIError(503, why, None, "engine_dead") from None

    async def _gather(self) -> dict[str, Any]:
        while not self.done:
            self.take(await self._next())
            while not self.deltas.empty():  # what else is in: no timer per token
                self.take(self.deltas.get_nowait())
        choices = [self.body(i) for i in range(len(self.texts))]
        return completion_body(self.id, self.created, self.model, choices, self.usage())

    async def collect(self, request: Request) -> dict[str, Any]:
        """The whole response; the jobs are cancelled the moment the client disconnects."""
        outcome = "error"
        gather = asyncio.ensure_future(self._gather())
        watch = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({gather, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not gather.done():
                outcome = "cancelled"
                raise APIError(499, "client disconnected", None, "client_disconnected")
            body = gather.result()
            outcome = "ok"
            return body
        except APIError as err:
            outcome = {504: "timeout", 499: "cancelled"}.get(err.status, outcome)
            raise
        finally:
            for task in (gather, watch):
                task.cancel()
            if not self.done:
                self.cancel()
            self.end(outcome)

    def end(self, outcome: str) -> None:
        if self._report is not None:
            self._report(self, outcome)
            self._report = None

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
            merged[d.index] = d if seen is None else seen.then(d)
            try:
                d = self.deltas.get_nowait()
            except asyncio.QueueEmpty:
                d = None
        return list(merged.values())

    async def stream(self, include_usage: bool) -> AsyncIterator[str]:
        outcome = "cancelled"  # unless it ends below: the client left (Starlette cancels this generator)
        try:
            while not self.done:
                try:
                    ready = self._ready(await self._next())
                except APIError as err:  # past the deadline, or the engine died
                    outcome = "timeout" if err.status == 504 else "error"
                    yield _sse(error_body(err.status, err.message, err.param, err.code))
                    return
                for d in ready:
                    try:
                        self.take(d)
                    except APIError as err:
                        outcome = "error"
                        yield _sse(error_body(err.status, err.message, err.param, err.code))
                        return
                    if d.text or d.finish_reason or d.logprobs:
                        scores = d.logprobs.body() if d.logprobs is not None else None
                        chunk = [choice_body(d.index, d.text, d.finish_reason, scores)]
                        yield _sse(completion_body(self.id, self.created, self.model, chunk, None))
            if include_usage:
                yield _sse(completion_body(self.id, self.created, self.model, [], self.usage()))
            yield DONE
            outcome = "ok"
        finally:
            if not self.done:  # the client left, the send failed, or the deadline passed: free the slots now
                self.cancel()
            self.end(outcome)
