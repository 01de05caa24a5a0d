"""Prometheus metrics as middleware, served over HTTP.

Every figure comes from a typed middleware hook; nothing in the runtime knows about Prometheus.
Metrics live in the middleware's own :class:`~prometheus_client.CollectorRegistry` (one per
instance, so tests and several apps in one process do not collide), served by a small HTTP
endpoint started with the first worker and stopped with the last (``port=None``: not served;
``port=0``: any free port, see :attr:`PrometheusMiddleware.port`). The same endpoint answers
the health probes ``/healthz`` and ``/readyz`` (:mod:`agentstream.observability.health`).

=============================================== ===========================================
metric                                          from
=============================================== ===========================================
``agentstream_deliveries_total{outcome}``       every delivery (completed, duplicate, ...;
                                                ``outcome="duplicate"`` counts duplicates)
``agentstream_llm_calls_total{model,status}``   model calls made
``agentstream_llm_calls_avoided_total``         model calls answered from the journal
                                                (labelled by agent, as every metric)
``agentstream_llm_tokens_total{model,kind}``    prompt and completion tokens
``agentstream_llm_cost_usd_total{model}``       money spent (reported by the provider, else
                                                priced by the price table)
``agentstream_llm_unpriced_calls_total{model}`` calls no price source could price (cost 0)
``agentstream_retries_total{failure_class}``    attempts scheduled after transient failures
``agentstream_dead_letters_total{failure_class}`` events dead-lettered
``agentstream_rate_limit_waits_total``          429s and rate-limit backoffs
``agentstream_rate_limit_wait_seconds_total``   time spent waiting for rate limits (admission
                                                permits, Retry-After waits, retry backoff)
``agentstream_divergences_total{source}``       non-determinism found on resume or replay
``agentstream_consumer_lag{topic,partition}``   uncommitted messages per owned partition
``agentstream_rebalances_total{change}``        partitions assigned / revoked
``agentstream_loop_stalls_total``               event-loop stalls over ``loop_stall_s``
``agentstream_loop_stall_seconds_total``        time the event loop spent stalled
``agentstream_in_flight`` / ``_buffered``       events running / queued or running
``agentstream_paused``                          1 while consumption is paused
``agentstream_paused_by{cause}``                1 while paused for ``buffer_full``,
                                                ``llm_capacity`` or ``provider_outage``
``agentstream_llm_breaker_open{breaker}``       1 while a model's circuit breaker is open or
                                                half-open (``agent="*"``)
``agentstream_provider_outage_wait_seconds_total`` time model calls waited for a provider
``agentstream_outbox_pending``                  unpublished outbox rows (``agent="*"``)
``agentstream_outbox_oldest_age_seconds``       age of the oldest unpublished row
``agentstream_outbox_stalled_seconds``          how long nothing could be published (0: fine)
``agentstream_waits_total{kind,phase}``         waits begun (``suspended``) and ended
                                                (``signalled``, ``timed_out``, ``fired``)
``agentstream_wait_seconds{kind}``              how long waits lasted, histogram
``agentstream_waiting_events``                  events of the agent waiting in the journal
``agentstream_step_seconds{kind,replayed}``     step latency histogram
``agentstream_event_seconds{outcome}``          delivery latency histogram
=============================================== ===========================================

All carry an ``agent`` label.
"""

from __future__ import annotations

import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from agentstream.failures import RateLimitedError
from agentstream.middleware import (
    BreakerChangeInput,
    DeadLetterInput,
    LLMCallOutput,
    LoopStallInput,
    Middleware,
    NonDeterminismInput,
    OutboxInput,
    PollInput,
    ProcessOutcome,
    RateLimitWaitInput,
    RebalanceInput,
    RetryInput,
    StepOutput,
    WaitInput,
    WorkerInput,
)
from agentstream.observability.health import HealthState, health_wsgi_app

ALL_AGENTS = "*"
"""The ``agent`` label of series that belong to the whole process: the outbox relay serves
every agent, a model's breaker every agent calling the model."""

_WAIT_BUCKETS = (0.1, 1, 10, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)
_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _Quiet(WSGIRequestHandler):
    """No access log line per scrape or probe."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


class PrometheusMiddleware(Middleware):
    """Counts what the runtime does and serves it to Prometheus.

    Args:
        port: Port of the ``/metrics`` endpoint (None: do not serve; 0: any free port).
        host: Address to listen on.
        registry: Registry to fill (default: a new one).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._want_port = port
        self._host = host
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._workers = 0
        self.health = HealthState()
        r = self.registry
        self.deliveries = Counter(
            "agentstream_deliveries", "Deliveries by outcome.", ["agent", "outcome"], registry=r
        )
        self.llm_calls = Counter(
            "agentstream_llm_calls", "Model calls made.", ["agent", "model", "status"], registry=r
        )
        self.llm_avoided = Counter(
            "agentstream_llm_calls_avoided",
            "Model calls answered from the journal instead of the model.",
            ["agent"],
            registry=r,
        )
        self.tokens = Counter(
            "agentstream_llm_tokens", "Tokens used.", ["agent", "model", "kind"], registry=r
        )
        self.cost = Counter(
            "agentstream_llm_cost_usd",
            "Money spent on model calls.",
            ["agent", "model"],
            registry=r,
        )
        self.unpriced = Counter(
            "agentstream_llm_unpriced_calls",
            "Model calls no price source could price (counted as $0).",
            ["agent", "model"],
            registry=r,
        )
        self.retries = Counter(
            "agentstream_retries",
            "Retries by failure class.",
            ["agent", "failure_class"],
            registry=r,
        )
        self.dead_letters = Counter(
            "agentstream_dead_letters",
            "Dead letters by failure class.",
            ["agent", "failure_class"],
            registry=r,
        )
        self.rate_limit_waits = Counter(
            "agentstream_rate_limit_waits", "Rate-limit rejections.", ["agent"], registry=r
        )
        self.rate_limit_seconds = Counter(
            "agentstream_rate_limit_wait_seconds",
            "Seconds of backoff ordered by rate limits.",
            ["agent"],
            registry=r,
        )
        self.divergences = Counter(
            "agentstream_divergences",
            "Recorded steps asked for with a different request (live resume or replay).",
            ["agent", "source"],
            registry=r,
        )
        self.lag = Gauge(
            "agentstream_consumer_lag",
            "Uncommitted messages per owned partition.",
            ["agent", "topic", "partition"],
            registry=r,
        )
        self.rebalances = Counter(
            "agentstream_rebalances",
            "Partition assignments and revocations seen by this worker.",
            ["agent", "change"],
            registry=r,
        )
        self.loop_stalls = Counter(
            "agentstream_loop_stalls",
            "Event-loop stalls longer than RuntimeConfig.loop_stall_s.",
            ["agent"],
            registry=r,
        )
        self.loop_stall_seconds = Counter(
            "agentstream_loop_stall_seconds",
            "Time the event loop spent stalled.",
            ["agent"],
            registry=r,
        )
        self.in_flight = Gauge(
            "agentstream_in_flight", "Events running now.", ["agent"], registry=r
        )
        self.buffered = Gauge(
            "agentstream_buffered", "Events queued or running.", ["agent"], registry=r
        )
        self.paused = Gauge(
            "agentstream_paused", "1 while consumption is paused.", ["agent"], registry=r
        )
        self.paused_by = Gauge(
            "agentstream_paused_by",
            "1 while consumption is paused for this cause.",
            ["agent", "cause"],
            registry=r,
        )
        self.breaker_open = Gauge(
            "agentstream_llm_breaker_open",
            "1 while a model's circuit breaker (ENDPOINT/MODEL) is open or half-open.",
            ["agent", "breaker"],
            registry=r,
        )
        self.outage_seconds = Counter(
            "agentstream_provider_outage_wait_seconds",
            "Seconds model calls waited for a failing or unreachable provider.",
            ["agent"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "agentstream_outbox_pending", "Unpublished outbox rows.", ["agent"], registry=r
        )
        self.outbox_oldest = Gauge(
            "agentstream_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row.",
            ["agent"],
            registry=r,
        )
        self.outbox_stalled = Gauge(
            "agentstream_outbox_stalled_seconds",
            "How long outputs have waited with none published (0 while publishing works).",
            ["agent"],
            registry=r,
        )
        self.step_seconds = Histogram(
            "agentstream_step_seconds",
            "Latency of journaled steps.",
            ["agent", "kind", "replayed"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.event_seconds = Histogram(
            "agentstream_event_seconds",
            "Latency of deliveries.",
            ["agent", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.waits = Counter(
            "agentstream_waits",
            "Waits begun (suspended) and ended (signalled, timed_out, fired).",
            ["agent", "kind", "phase"],
            registry=r,
        )
        self.wait_seconds = Histogram(
            "agentstream_wait_seconds",
            "How long waits for a signal or timer lasted.",
            ["agent", "kind"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.waiting = Gauge(
            "agentstream_waiting_events",
            "Events waiting for a signal or timer in the journal (every worker's).",
            ["agent"],
            registry=r,
        )

    @property
    def port(self) -> int | None:
        """The port the endpoint listens on, once started."""
        return None if self._server is None else int(self._server.server_port)

    def serve(self) -> int:
        """Start the HTTP endpoint now (idempotent); return its port."""
        if self._server is None:
            if self._want_port is None:
                raise RuntimeError("PrometheusMiddleware was created without a port")
            app = health_wsgi_app(self.health, make_wsgi_app(self.registry))
            self._server = make_server(
                self._host, self._want_port, app, ThreadingWSGIServer, handler_class=_Quiet
            )
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="agentstream-metrics", daemon=True
            )
            self._thread.start()
        return int(self._server.server_port)

    def shutdown(self) -> None:
        """Stop the HTTP endpoint."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    async def on_worker_start(self, inp: WorkerInput) -> None:
        """Serve once the first worker starts."""
        self._workers += 1
        self.health.workers = self._workers
        self.health.polled(inp.agent)
        if self._want_port is not None:
            self.serve()

    async def on_worker_stop(self, inp: WorkerInput) -> None:
        """Stop serving when the last worker stops."""
        self._workers = max(0, self._workers - 1)
        self.health.workers = self._workers
        self.health.last_poll.pop(inp.agent, None)
        if self._workers == 0:
            self.shutdown()

    async def on_rebalance(self, inp: RebalanceInput) -> None:
        """Count assignments and revocations."""
        self.rebalances.labels(inp.agent, inp.change).inc()

    async def on_loop_stall(self, inp: LoopStallInput) -> None:
        """Count event-loop stalls and their length."""
        self.loop_stalls.labels(inp.agent).inc()
        self.loop_stall_seconds.labels(inp.agent).inc(inp.stall_s)

    async def after_process(self, inp: ProcessOutcome) -> None:
        """Deliveries (duplicates among them), avoided calls, delivery latency."""
        self.deliveries.labels(inp.agent, inp.outcome).inc()
        if inp.llm_calls_replayed:
            self.llm_avoided.labels(inp.agent).inc(inp.llm_calls_replayed)
        self.event_seconds.labels(inp.agent, inp.outcome).observe(inp.duration_s)

    async def after_llm_call(self, inp: LLMCallOutput) -> None:
        """Model calls, tokens, cost, rate-limit rejections."""
        model = inp.response.model if inp.response and inp.response.model else inp.request.model
        status = "ok" if inp.error is None else type(inp.error).__name__
        self.llm_calls.labels(inp.agent, model, status).inc()
        if inp.response is not None:
            usage = inp.response.usage
            self.tokens.labels(inp.agent, model, "prompt").inc(usage.prompt_tokens)
            self.tokens.labels(inp.agent, model, "completion").inc(usage.completion_tokens)
            self.cost.labels(inp.agent, model).inc(inp.response.cost_usd)
            if inp.response.cost_source == "unpriced":
                self.unpriced.labels(inp.agent, model).inc()
        if isinstance(inp.error, RateLimitedError):
            self.rate_limit_waits.labels(inp.agent).inc()

    async def after_step(self, inp: StepOutput) -> None:
        """Step latency."""
        self.step_seconds.labels(inp.agent, inp.kind, str(inp.replayed).lower()).observe(
            inp.duration_s
        )

    async def on_retry(self, inp: RetryInput) -> None:
        """Retries by class; backoff ordered by a rate limit."""
        self.retries.labels(inp.agent, inp.failure_class).inc()
        if isinstance(inp.error, RateLimitedError):
            self.rate_limit_seconds.labels(inp.agent).inc(inp.delay_s)

    async def on_rate_limit_wait(self, inp: RateLimitWaitInput) -> None:
        """Time a model call waited for rate-limit capacity or for a provider outage."""
        if inp.reason == "provider_outage":
            self.outage_seconds.labels(inp.agent).inc(inp.delay_s)
        else:
            self.rate_limit_seconds.labels(inp.agent).inc(inp.delay_s)

    async def on_outbox(self, inp: OutboxInput) -> None:
        """Outbox backlog, its oldest row, and a publishing stall."""
        self.health.outbox(
            healthy=inp.healthy,
            pending=inp.pending,
            stalled_s=inp.stalled_s,
            journal_ok=inp.journal_ok,
        )
        self.outbox_pending.labels(ALL_AGENTS).set(inp.pending)
        self.outbox_oldest.labels(ALL_AGENTS).set(inp.oldest_age_s)
        self.outbox_stalled.labels(ALL_AGENTS).set(inp.stalled_s)

    async def on_breaker_change(self, inp: BreakerChangeInput) -> None:
        """A model's circuit breaker opened or closed."""
        self.health.breaker(inp.breaker, inp.status, inp.reason)
        self.breaker_open.labels(ALL_AGENTS, inp.breaker).set(0 if inp.status == "closed" else 1)

    async def on_dead_letter(self, inp: DeadLetterInput) -> None:
        """Dead letters by class."""
        self.dead_letters.labels(inp.agent, inp.failure_class).inc()

    async def on_nondeterminism(self, inp: NonDeterminismInput) -> None:
        """A resumed step's request differed from the recorded one."""
        self.divergences.labels(inp.agent, "resume").inc()

    async def on_wait(self, inp: WaitInput) -> None:
        """Waits begun and ended, and how long they lasted."""
        self.waits.labels(inp.agent, inp.kind, inp.phase).inc()
        if inp.phase != "suspended":
            self.wait_seconds.labels(inp.agent, inp.kind).observe(inp.waited_s)

    async def on_poll(self, inp: PollInput) -> None:
        """In flight, buffered, paused, lag, waiting events."""
        self.health.polled(inp.agent)
        self.in_flight.labels(inp.agent).set(inp.in_flight)
        self.buffered.labels(inp.agent).set(inp.buffered)
        self.paused.labels(inp.agent).set(1 if inp.paused else 0)
        for cause in ("buffer_full", "llm_capacity", "provider_outage"):
            self.paused_by.labels(inp.agent, cause).set(1 if cause in inp.pause_causes else 0)
        if inp.waiting is not None:
            self.waiting.labels(inp.agent).set(inp.waiting)
        if inp.lag is not None:
            for tp, value in inp.lag.items():
                if value is not None:
                    self.lag.labels(inp.agent, tp.topic, str(tp.partition)).set(value)
