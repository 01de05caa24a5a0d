"""Configure the OpenTelemetry SDK from the standard ``OTEL_*`` environment.

``agentstream run --trace`` calls :func:`configure_from_env` so spans and GenAI metrics leave
the process without code. It reads what the SDK's own environment specification says:

* ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: ``otlp``, ``console`` or ``none``
  (comma-separated). ``otlp`` needs ``opentelemetry-exporter-otlp`` (HTTP/protobuf unless
  ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``), which reads ``OTEL_EXPORTER_OTLP_*`` itself; without
  it a warning says so and the console exporter stands in. Default: ``otlp`` when installed,
  else ``console`` for traces and ``none`` for metrics.
* ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (the service name defaults to the
  app's name); ``OTEL_TRACES_SAMPLER``, ``OTEL_PROPAGATORS`` and the batch settings are read by
  the SDK as usual.

A tracer or meter provider set by the application before is left as it is.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics, trace

log = logging.getLogger("agentstream.otel")

_OTLP_MODULES = {
    "traces": {
        "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "http": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    },
    "metrics": {
        "grpc": "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
        "http": "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    },
}
_OTLP_CLASSES = {"traces": "OTLPSpanExporter", "metrics": "OTLPMetricExporter"}


def _otlp(signal: str) -> Any | None:
    """An OTLP exporter for ``traces`` or ``metrics``, or None when the package is missing."""
    protocol = os.environ.get(
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL",
        os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    )
    module = _OTLP_MODULES[signal]["grpc" if protocol == "grpc" else "http"]
    try:
        return getattr(importlib.import_module(module), _OTLP_CLASSES[signal])()
    except ImportError:
        return None


def _names(variable: str, default: str) -> list[str]:
    raw = os.environ.get(variable, "").strip()
    return [n.strip().lower() for n in (raw or default).split(",") if n.strip()]


def _has_otlp() -> bool:
    try:
        importlib.import_module("opentelemetry.exporter.otlp")
    except ImportError:
        return False
    return True


def configure_from_env(service_name: str) -> Callable[[], None]:
    """Install tracer and meter providers built from ``OTEL_*``; return their shutdown.

    Args:
        service_name: ``service.name`` when ``OTEL_SERVICE_NAME`` is not set.

    Returns:
        A function that flushes and shuts down what was installed (call it before exit).
    """
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        MetricReader,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    resource = Resource.create(attributes)
    shutdowns: list[Callable[[], Any]] = []
    otlp_default = "otlp" if _has_otlp() else None

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        tracer_provider = TracerProvider(resource=resource)
        for name in _names("OTEL_TRACES_EXPORTER", otlp_default or "console"):
            exporter = _otlp("traces") if name == "otlp" else None
            if name == "otlp" and exporter is None:
                log.warning(
                    "OTEL_TRACES_EXPORTER=otlp needs pip install opentelemetry-exporter-otlp; "
                    "printing spans to the console instead"
                )
            if exporter is not None:
                tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
            elif name in ("console", "otlp"):
                tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
            elif name != "none":
                log.warning("unknown OTEL_TRACES_EXPORTER %r ignored", name)
        trace.set_tracer_provider(tracer_provider)
        shutdowns.append(tracer_provider.shutdown)

    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        readers: list[MetricReader] = []
        for name in _names("OTEL_METRICS_EXPORTER", otlp_default or "none"):
            exporter = _otlp("metrics") if name == "otlp" else None
            if name == "otlp" and exporter is None:
                log.warning(
                    "OTEL_METRICS_EXPORTER=otlp needs pip install opentelemetry-exporter-otlp; "
                    "GenAI metrics are not exported"
                )
            elif exporter is not None:
                readers.append(PeriodicExportingMetricReader(exporter))
            elif name == "console":
                readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
            elif name != "none":
                log.warning("unknown OTEL_METRICS_EXPORTER %r ignored", name)
        if readers:
            meter_provider = MeterProvider(resource=resource, metric_readers=readers)
            metrics.set_meter_provider(meter_provider)
            shutdowns.append(meter_provider.shutdown)

    def shutdown() -> None:
        for stop in shutdowns:
            stop()

    return shutdown
