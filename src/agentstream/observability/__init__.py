"""Observability: Prometheus metrics, OpenTelemetry traces and JSON logs, all as middleware.

``observe(app, ...)`` adds them to an app in one call; ``agentstream run --metrics-port N
--log-json --trace`` does the same from the command line.
"""

from __future__ import annotations

from agentstream.app import App
from agentstream.observability.genai_metrics import GenAIMetricsMiddleware
from agentstream.observability.logs import (
    EventLogMiddleware,
    JsonFormatter,
    configure_json_logging,
    current_event,
)
from agentstream.observability.metrics import PrometheusMiddleware
from agentstream.observability.tracing import TracingMiddleware


def observe(
    app: App,
    *,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    tracing: bool = False,
    event_logs: bool = True,
) -> PrometheusMiddleware | None:
    """Add the observability middleware to an app; return the metrics middleware, if any.

    Args:
        app: The app.
        metrics_port: Serve ``/metrics`` on this port (None: no metrics).
        metrics_host: Address of the metrics endpoint.
        tracing: Add OpenTelemetry spans and GenAI metrics (configure the SDK yourself, or
            with :func:`~agentstream.observability.otel_sdk.configure_from_env`).
        event_logs: Put the event identity on every log line of a delivery.
    """
    if event_logs:
        app.middleware.add(EventLogMiddleware())
    if tracing:
        app.middleware.add(TracingMiddleware())
        app.middleware.add(GenAIMetricsMiddleware())
    if metrics_port is None:
        return None
    metrics = PrometheusMiddleware(port=metrics_port, host=metrics_host)
    app.middleware.add(metrics)
    return metrics


__all__ = [
    "EventLogMiddleware",
    "GenAIMetricsMiddleware",
    "JsonFormatter",
    "PrometheusMiddleware",
    "TracingMiddleware",
    "configure_json_logging",
    "current_event",
    "observe",
]
