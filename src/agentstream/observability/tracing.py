"""OpenTelemetry tracing as middleware: one span per delivery, a child per step and model call.

The delivery span continues the trace found in the message's headers (W3C ``traceparent`` /
``tracestate``, through the globally configured propagator) and is the current span while the
handler runs, so spans the agent's own libraries create nest under it. Outputs carry the
delivery span's context in their headers (``output_headers`` hook), so the consumers of the
output topic continue the same trace. Model calls are spans of their own (started before the
call, ended after); journaled steps and effects, and calls answered from the journal, are
recorded as spans with their measured start and end.

Spans follow the OpenTelemetry semantic conventions:

* the delivery span is a messaging consumer span named ``process TOPIC`` with
  ``messaging.system`` (``kafka``, ``aws_sqs``, or ``agentstream_embedded`` for the embedded
  log), ``messaging.operation.name``/``type``, ``messaging.destination.name``,
  ``messaging.consumer.group.name``, the partition where there is one, and the Kafka offset
  and message key on Kafka only (``messaging.message.id`` on SQS);
* a model call is a GenAI client span named ``chat MODEL`` with ``gen_ai.operation.name``,
  ``gen_ai.provider.name``, ``gen_ai.request.model``/``temperature``/``max_tokens``,
  ``gen_ai.response.id``/``model``/``finish_reasons``, ``gen_ai.usage.input_tokens``/
  ``output_tokens``, and ``error.type`` when it failed.

Configure the SDK (exporter, sampler) as usual, or let ``agentstream run --trace`` configure it
from the ``OTEL_*`` environment (:mod:`agentstream.observability.otel_sdk`); without a
configured provider the API's no-op tracer makes this middleware free.
"""

from __future__ import annotations

import time
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
    WorkerInput,
)

EMBEDDED_SYSTEM = "agentstream_embedded"
"""``messaging.system`` of the embedded SQLite log (not a well-known system of the conventions)."""


def error_type(error: BaseException) -> str:
    """``error.type`` of a failure: the exception's qualified class name."""
    cls = type(error)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def consumer_attributes(event: Event, system: str, group: str) -> dict[str, Any]:
    """Messaging attributes of a delivery's consumer span, for its transport."""
    msg = event.message
    attributes: dict[str, Any] = {
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": msg.topic,
        "messaging.message.body.size": 0 if msg.value is None else len(msg.value),
    }
    if system:
        attributes["messaging.system"] = system
    if group:
        attributes["messaging.consumer.group.name"] = group
    if system == "aws_sqs":
        if msg.message_id:
            attributes["messaging.message.id"] = msg.message_id
    else:
        attributes["messaging.destination.partition.id"] = str(msg.partition)
    if system == "kafka":
        attributes["messaging.kafka.offset"] = msg.offset
        key = text_of(msg.key)
        if key is not None:
            attributes["messaging.kafka.message.key"] = key
    return attributes


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
        self._workers: dict[str, WorkerInput] = {}

    async def on_worker_start(self, inp: WorkerInput) -> None:
        """Remember the agent's transport system and consumer group for its spans."""
        self._workers[inp.agent] = inp

    async def before_process(self, inp: ProcessInput) -> None:
        """Start the delivery span as a child of the message's trace context; make it current."""
        msg = inp.event.message
        parent = propagate.extract(_carrier(msg.headers))
        worker = self._workers.get(inp.agent)
        span = self._tracer.start_span(
            f"process {msg.topic}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                **consumer_attributes(
                    inp.event,
                    worker.messaging_system if worker else "",
                    worker.group if worker else "",
                ),
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
            span.set_attribute("error.type", error_type(inp.error))
            span.record_exception(inp.error)
            span.set_status(Status(StatusCode.ERROR, str(inp.error)[:200]))
        span.end()
        otel_context.detach(token)  # type: ignore[arg-type]

    def _parent(self, event: Event) -> OtelContext | None:
        found = self._events.get(id(event))
        return None if found is None else trace.set_span_in_context(found[0])

    async def before_llm_call(self, inp: LLMCallInput) -> None:
        """Start a model-call span."""
        request = inp.request
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": request.model,
            "agentstream.step.seq": inp.seq,
        }
        if inp.provider:
            attributes["gen_ai.provider.name"] = inp.provider
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        span = self._tracer.start_span(
            f"chat {request.model}",
            context=self._parent(inp.event),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        self._llm[(id(inp.event), inp.seq)] = span

    async def after_llm_call(self, inp: LLMCallOutput) -> None:
        """End the model-call span with usage and cost."""
        span = self._llm.pop((id(inp.event), inp.seq), None)
        if span is None:
            return
        response = inp.response
        if response is not None:
            if response.id:
                span.set_attribute("gen_ai.response.id", response.id)
            span.set_attribute("gen_ai.response.model", response.model)
            span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
            span.set_attribute("gen_ai.usage.input_tokens", response.usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", response.usage.completion_tokens)
            span.set_attribute("agentstream.cost_usd", response.cost_usd)
            span.set_attribute("agentstream.cost_source", response.cost_source)
        if inp.error is not None:
            span.set_attribute("error.type", error_type(inp.error))
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
