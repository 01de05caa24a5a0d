"""Observability: Prometheus metrics, OpenTelemetry traces and JSON logs, all as middleware.

``observe(app, ...)`` adds them to an app in one call; ``agentstream run --metrics-port N
--log-json --trace`` does the same from the command line.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from agentstream.app import App

if TYPE_CHECKING:
    from agentstream.observability.genai_metrics import GenAIMetricsMiddleware
    from agentstream.observability.logs import (
        EventLogMiddleware,
        JsonFormatter,
        configure_json_logging,
        current_event,
    )
    from agentstream.observability.metrics import PrometheusMiddleware
    from agentstream.observability.tracing import TracingMiddleware

# Each name is imported on first use: prometheus_client and opentelemetry come with the
# 'observability' extra, and ``import agentstream`` must work without it.
_LAZY = {
    "GenAIMetricsMiddleware": "agentstream.observability.genai_metrics",
    "EventLogMiddleware": "agentstream.observability.logs",
    "JsonFormatter": "agentstream.observability.logs",
    "configure_json_logging": "agentstream.observability.logs",
    "current_event": "agentstream.observability.logs",
    "PrometheusMiddleware": "agentstream.observability.metrics",
    "TracingMiddleware": "agentstream.observability.tracing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)


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
    from agentstream.observability.logs import EventLogMiddleware

    if event_logs:
        app.middleware.add(EventLogMiddleware())
    if tracing:
        from agentstream.observability.genai_metrics import GenAIMetricsMiddleware
        from agentstream.observability.tracing import TracingMiddleware

        app.middleware.add(TracingMiddleware())
        app.middleware.add(GenAIMetricsMiddleware())
    if metrics_port is None:
        return None
    from agentstream.observability.metrics import PrometheusMiddleware

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
