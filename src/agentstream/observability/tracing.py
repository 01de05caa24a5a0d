"""OpenTelemetry tracing as middleware: one span per delivery, a child per step and model call.

The delivery span continues the trace found in the message's headers (W3C ``traceparent`` /
``tracestate``, through the globally configured propagator) and is the current span while the
handler runs, so spans the agent's own libraries create nest under it. Outputs carry the
delivery span's context in their headers (``output_headers`` hook), so the consumers of the
output topic continue the same trace. Model calls are spans of their own (started before the
call, ended after); journaled steps and effects, and calls answered from the journal, are
recorded as spans with their measured start and end.

Configure the SDK (exporter, sampler) as usual; without a configured provider the API's no-op
tracer makes this middleware free.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context as OtelContext
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from agentstream.event import Event, Headers, text_of
from agentstream.middleware import (
    LLMCallInput,
    LLMCallOutput,
    Middleware,
    OutputsInput,
    ProcessInput,
    ProcessOutcome,
    StepOutput,
)


def _carrier(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        text = text_of(v)
        if text is not None:
            out[k.lower()] = text
    return out


class TracingMiddleware(Middleware):
    """Spans for deliveries, steps and model calls, with trace context in message headers.

    Args:
        tracer_provider: Provider to get the tracer from (default: the global one).
    """

    def __init__(self, *, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer: Tracer = trace.get_tracer("agentstream", tracer_provider=tracer_provider)
        self._events: dict[int, tuple[Span, object]] = {}
        self._llm: dict[tuple[int, int], Span] = {}

    async def before_process(self, inp: ProcessInput) -> None:
        """Start the delivery span as a child of the message's trace context; make it current."""
        msg = inp.event.message
        parent = propagate.extract(_carrier(msg.headers))
        span = self._tracer.start_span(
            f"process {inp.agent}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.operation.type": "process",
                "messaging.destination.name": msg.topic,
                "messaging.destination.partition.id": str(msg.partition),
                "messaging.kafka.offset": msg.offset,
                "agentstream.agent": inp.agent,
                "agentstream.event_id": inp.event.identity,
                "agentstream.key": inp.event.key,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        self._events[id(inp.event)] = (span, token)

    async def after_process(self, inp: ProcessOutcome) -> None:
        """End the delivery span with its outcome."""
        found = self._events.pop(id(inp.event), None)
        if found is None:
            return
        span, token = found
        span.set_attribute("agentstream.outcome", inp.outcome)
        span.set_attribute("agentstream.llm_calls", inp.llm_calls)
        span.set_attribute("agentstream.llm_calls_replayed", inp.llm_calls_replayed)
        if inp.failure_class is not None:
            span.set_attribute("agentstream.failure_class", inp.failure_class)
        if inp.error is not None:
            span.record_exception(inp.error)
            span.set_status(Status(StatusCode.ERROR, str(inp.error)[:200]))
        span.end()
        otel_context.detach(token)  # type: ignore[arg-type]

    def _parent(self, event: Event) -> OtelContext | None:
        found = self._events.get(id(event))
        return None if found is None else trace.set_span_in_context(found[0])

    async def before_llm_call(self, inp: LLMCallInput) -> None:
        """Start a model-call span."""
        span = self._tracer.start_span(
            f"llm {inp.request.model}",
            context=self._parent(inp.event),
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": inp.request.model,
                "agentstream.step.seq": inp.seq,
            },
        )
        self._llm[(id(inp.event), inp.seq)] = span

    async def after_llm_call(self, inp: LLMCallOutput) -> None:
        """End the model-call span with usage and cost."""
        span = self._llm.pop((id(inp.event), inp.seq), None)
        if span is None:
            return
        if inp.response is not None:
            span.set_attribute("gen_ai.response.model", inp.response.model)
            span.set_attribute("gen_ai.usage.input_tokens", inp.response.usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", inp.response.usage.completion_tokens)
            span.set_attribute("agentstream.cost_usd", inp.response.cost_usd)
        if inp.error is not None:
            span.record_exception(inp.error)
            span.set_status(Status(StatusCode.ERROR, str(inp.error)[:200]))
        span.end()

    async def after_step(self, inp: StepOutput) -> None:
        """A span per journaled step (model calls made live already have theirs)."""
        if inp.kind == "llm" and not inp.replayed:
            return
        end = time.time_ns()
        span = self._tracer.start_span(
            f"{inp.kind} {inp.name}",
            context=self._parent(inp.event),
            kind=SpanKind.INTERNAL,
            start_time=end - int(inp.duration_s * 1e9),
            attributes={
                "agentstream.step.seq": inp.seq,
                "agentstream.step.kind": inp.kind,
                "agentstream.step.replayed": inp.replayed,
            },
        )
        if inp.error is not None:
            span.record_exception(inp.error)
            span.set_status(Status(StatusCode.ERROR, str(inp.error)[:200]))
        span.end(end_time=end)

    async def output_headers(self, inp: OutputsInput) -> Headers:
        """The delivery span's context, for the outputs' consumers."""
        carrier: dict[str, str] = {}
        parent = self._parent(inp.event)
        propagate.inject(carrier, context=parent)
        return tuple((k, v.encode()) for k, v in carrier.items())


def trace_context(headers: Headers) -> Mapping[str, Any]:
    """The W3C trace context carried by message headers (for tests and tools)."""
    return _carrier(headers)
