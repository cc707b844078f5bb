"""``GET /metrics``: the server's Prometheus metrics (text exposition format, ``prometheus_client``).

Request-level numbers are observed by the API as requests finish; engine-level ones (queue depth,
running sequences, KV slots in use, decode steps, speculative drafts) are read from the engine's
``stats()`` at scrape time, so a scrape never waits for the engine thread. Each app has its own
registry: several servers in one process (the tests) do not share counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

PREFIX = "llmfoundry"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds; editor completion aims at 0.2–0.3 s p50, long generations take minutes."""
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)

ENGINE_GAUGES = {"queue_depth": ("waiting", "Requests queued, not yet running"),
                 "running_sequences": ("running", "Sequences (choices) being decoded"),
                 "kv_slots_in_use": ("running", "KV-cache slots holding a sequence (one per running choice)"),
                 "kv_slots": ("slots", "KV-cache slots in all")}  # fmt: skip
"""Gauge name → (``stats()`` key, help)."""
ENGINE_COUNTERS = {"steps": "Engine steps run", "spec_drafted": "Speculative draft tokens proposed",
                   "spec_accepted": "Speculative draft tokens accepted"}  # fmt: skip


class _EngineCollector(Collector):
    """Engine gauges and counters, read from ``stats()`` when Prometheus scrapes."""

    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator:
        stats = self._stats()
        for name, (key, doc) in ENGINE_GAUGES.items():
            yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=stats.get(key, 0))
        for key, doc in ENGINE_COUNTERS.items():
            yield CounterMetricFamily(f"{PREFIX}_engine_{key}", doc, value=stats.get(key, 0))


class ServerMetrics:
    """The metrics one app exports; ``observe`` is called once per finished request."""

    def __init__(self, engine_stats: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(f"{PREFIX}_request_latency_seconds", "Completion request latency, arrival to "
                                 "last byte", ["model"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.ttft = Histogram(f"{PREFIX}_time_to_first_token_seconds", "Arrival to the first generated token",
                              ["model"], buckets=TTFT_BUCKETS, registry=r)  # fmt: skip
        self.prompt_tokens = Counter(f"{PREFIX}_prompt_tokens", "Prompt tokens of finished requests",
                                     ["model"], registry=r)  # fmt: skip
        self.generated = Counter(f"{PREFIX}_generation_tokens", "Tokens generated", ["model"], registry=r)
        self.requests = Counter(f"{PREFIX}_requests", "Completion requests by outcome (ok, cancelled, "
                                "timeout, error)", ["model", "outcome"], registry=r)  # fmt: skip
        self.finished = Counter(f"{PREFIX}_choices_finished", "Choices of answered requests by finish reason",
                                ["model", "finish_reason"], registry=r)  # fmt: skip
        self.cancelled = Counter(f"{PREFIX}_cancellations", "Requests cancelled because the client left or "
                                 "the time limit passed", ["reason"], registry=r)  # fmt: skip
        self.errors = Counter(f"{PREFIX}_errors", "Error responses by HTTP status and error code",
                              ["status", "code"], registry=r)  # fmt: skip
        r.register(_EngineCollector(engine_stats))

    def observe(self, model: str, outcome: str, latency_s: float, ttft_s: float | None, prompt_tokens: int,
                completion_tokens: int, finish_reasons: list[str | None]) -> None:
        """One ended request. Latency and time to first token are observed for answered requests only
        (``ok``): a client that left early would drag the percentiles toward zero."""
        self.requests.labels(model, outcome).inc()
        self.generated.labels(model).inc(completion_tokens)
        self.prompt_tokens.labels(model).inc(prompt_tokens)
        if outcome in ("cancelled", "timeout"):
            self.cancelled.labels("client_disconnected" if outcome == "cancelled" else "timeout").inc()
        if outcome != "ok":
            return
        self.latency.labels(model).observe(latency_s)
        if ttft_s is not None:
            self.ttft.labels(model).observe(ttft_s)
        for reason in finish_reasons:
            self.finished.labels(model, reason or "none").inc()

    def error(self, status: int, code: str | None) -> None:
        self.errors.labels(str(status), code or "none").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
