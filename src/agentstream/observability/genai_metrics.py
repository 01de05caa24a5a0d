"""OpenTelemetry GenAI client metrics as middleware, beside the Prometheus ones.

Two histograms of the GenAI semantic conventions, recorded for every model call made (calls
answered from the journal make no request and are not recorded):

* ``gen_ai.client.token.usage`` (``{token}``), once per call and token type
  (``gen_ai.token.type`` = ``input`` or ``output``);
* ``gen_ai.client.operation.duration`` (``s``), with ``error.type`` when the call failed.

Both carry ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model`` and,
when there was an answer, ``gen_ai.response.model``. Export them with the SDK's meter provider
(``agentstream run --trace`` configures one from ``OTEL_METRICS_EXPORTER``); without one the
API's no-op meter makes this middleware free.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider

from agentstream.middleware import LLMCallOutput, Middleware
from agentstream.observability.tracing import error_type

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
"""Bucket boundaries the conventions advise for token usage."""
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
"""Bucket boundaries the conventions advise for operation duration, in seconds."""


class GenAIMetricsMiddleware(Middleware):
    """Records ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``.

    Args:
        meter_provider: Provider to get the meter from (default: the global one).
    """

    def __init__(self, *, meter_provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter("agentstream", meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(map(float, TOKEN_BUCKETS)),
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )

    async def after_llm_call(self, inp: LLMCallOutput) -> None:
        """Record one model call's duration and, when it answered, its tokens."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": inp.request.model,
        }
        if inp.provider:
            attributes["gen_ai.provider.name"] = inp.provider
        if inp.response is not None and inp.response.model:
            attributes["gen_ai.response.model"] = inp.response.model
        timed = dict(attributes)
        if inp.error is not None:
            timed["error.type"] = error_type(inp.error)
        self.duration.record(inp.duration_s, timed)
        if inp.response is not None:
            usage = inp.response.usage
            self.token_usage.record(
                usage.prompt_tokens, {**attributes, "gen_ai.token.type": "input"}
            )
            self.token_usage.record(
                usage.completion_tokens, {**attributes, "gen_ai.token.type": "output"}
            )
