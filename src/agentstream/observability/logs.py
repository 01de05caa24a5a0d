"""Structured JSON logs with the event identity on every line.

:class:`EventLogMiddleware` puts the event being processed (agent, identity, key, source
coordinates) in a context variable for the duration of its delivery; :class:`JsonFormatter`
writes one JSON object per log record with those fields, plus the current trace and span ids
when OpenTelemetry is recording. Any log line emitted while an event is processed (by the
runtime, the agent or its libraries) therefore names the event::

    {"ts": "2026-01-01T12:00:00.123Z", "level": "WARNING", "logger": "agentstream.executor",
     "msg": "...", "agent": "triage", "event_id": "T-1003", "key": "cust-01",
     "source": "tickets/2/17", "trace_id": "...", "span_id": "..."}
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys
from typing import Any

try:  # trace ids on log lines when OpenTelemetry is installed; JSON logs work without it
    from opentelemetry import trace
except ImportError:  # pragma: no cover - exercised by the CLI's hidden-extra tests
    trace = None  # type: ignore[assignment]

from agentstream.middleware import Middleware, ProcessInput, ProcessOutcome

current_event: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "agentstream_current_event", default=None
)
"""The event being processed in this task, as log fields (None outside a delivery)."""


class EventLogMiddleware(Middleware):
    """Sets :data:`current_event` around each delivery."""

    def __init__(self) -> None:
        self._tokens: dict[int, contextvars.Token[dict[str, str] | None]] = {}

    async def before_process(self, inp: ProcessInput) -> None:
        """Name the event for every log line of its delivery."""
        msg = inp.event.message
        fields = {
            "agent": inp.agent,
            "event_id": inp.event.identity,
            "key": inp.event.key,
            "source": msg.coordinates,
        }
        self._tokens[id(inp.event)] = current_event.set(fields)

    async def after_process(self, inp: ProcessOutcome) -> None:
        """Forget it once the delivery ended."""
        token = self._tokens.pop(id(inp.event), None)
        if token is not None:
            current_event.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, event fields, trace ids.

    Args:
        fields: Put on every line (``{"worker": "2"}`` for a worker of ``run --workers``).
    """

    def __init__(self, fields: dict[str, str] | None = None) -> None:
        super().__init__()
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        """Render a record."""
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(self.fields)
        event = current_event.get()
        if event:
            out.update(event)
        span = trace.get_current_span().get_span_context() if trace is not None else None
        if span is not None and span.is_valid:
            out["trace_id"] = format(span.trace_id, "032x")
            out["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_json_logging(
    level: str | int = "INFO", stream: Any = None, fields: dict[str, str] | None = None
) -> logging.Handler:
    """Send every log record to ``stream`` (default stderr) as JSON; return the handler.

    ``fields`` go on every line (the CLI adds ``worker`` under ``run --workers``).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(fields))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else getattr(logging, level.upper()))
    return handler
