"""Spans and metrics follow the OpenTelemetry GenAI and messaging conventions on every transport."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentstream
from agentstream.llm.openai_provider import OpenAIProvider
from agentstream.llm.simulator import SimulatorConfig, SimulatorServer
from agentstream.observability import GenAIMetricsMiddleware, TracingMiddleware
from agentstream.testing import AppHarness
from tests.formats.conftest import Broker
from tests.runtime.helpers import FAST

SYSTEMS = {"kafka": "kafka", "sqs": "aws_sqs", "embedded": "agentstream_embedded"}


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SimulatorConfig(latency_ms=2.0, seed=3)).start()
    yield server
    server.stop()


async def test_consumer_and_model_call_spans_carry_the_conventions_attributes(
    broker: Broker, sim: SimulatorServer, name: str, tmp_path: Path
):
    # Given an agent making one model call, traced and metered with the SDK's in-memory parts
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    source = await broker.source(f"{name}-tickets")
    app = agentstream.App(
        name,
        broker=broker.url,
        store=f"sqlite:///{tmp_path / 'j.db'}",
        llm=OpenAIProvider(base_url=sim.url, api_key="sim"),
        middleware=[
            TracingMiddleware(tracer_provider=tracer_provider),
            GenAIMetricsMiddleware(meter_provider=meter_provider),
        ],
        config=FAST,
    )

    @app.agent(source=source, identity="header:ce_id")
    async def triage(ctx: agentstream.Context, payload: dict) -> None:
        await ctx.llm(user=payload["text"], temperature=0.2, max_tokens=40)

    # When one record arrives on this transport
    async with AppHarness(app) as h:
        await broker.publish(source, b'{"text": "late parcel"}', {"ce_id": b"e-1"}, key=b"cust-7")
        await h.wait_drained(timeout_s=60)
    spans = exporter.get_finished_spans()
    (consumer,) = [s for s in spans if s.name == f"process {source}"]
    (chat,) = [s for s in spans if s.name == "chat sim-1"]
    # Then the consumer span has the messaging attributes of its system, and no Kafka ones off Kafka
    attrs = dict(consumer.attributes or {})
    assert attrs["messaging.system"] == SYSTEMS[broker.kind]
    assert attrs["messaging.operation.name"] == "process"
    assert attrs["messaging.operation.type"] == "process"
    assert attrs["messaging.destination.name"] == source
    assert attrs["messaging.consumer.group.name"] == f"{name}.triage"
    if broker.kind == "kafka":
        assert attrs["messaging.kafka.message.key"] == "cust-7"
        assert isinstance(attrs["messaging.kafka.offset"], int)
    else:
        assert not [k for k in attrs if k.startswith("messaging.kafka.")]
    if broker.kind == "sqs":
        assert attrs["messaging.message.id"]
    # And the model call is a GenAI client span, child of the consumer span
    assert chat.parent is not None and chat.parent.span_id == consumer.context.span_id
    gen = dict(chat.attributes or {})
    assert gen["gen_ai.operation.name"] == "chat"
    assert gen["gen_ai.provider.name"] == "openai"
    assert gen["gen_ai.request.model"] == "sim-1"
    assert gen["gen_ai.request.temperature"] == 0.2
    assert gen["gen_ai.request.max_tokens"] == 40
    assert gen["gen_ai.response.id"]
    assert gen["gen_ai.response.model"] == "sim-1"
    assert list(gen["gen_ai.response.finish_reasons"]) in (["stop"], ["length"])
    assert gen["gen_ai.usage.input_tokens"] > 0
    assert "error.type" not in gen
    # And the GenAI client metrics were recorded
    data = reader.get_metrics_data()
    points = {
        m.name: m.data.data_points
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    (duration,) = points["gen_ai.client.operation.duration"]
    assert duration.count == 1 and duration.attributes["gen_ai.provider.name"] == "openai"
    kinds = {p.attributes["gen_ai.token.type"]: p.sum for p in points["gen_ai.client.token.usage"]}
    assert set(kinds) == {"input", "output"} and kinds["input"] == gen["gen_ai.usage.input_tokens"]


def test_error_type_is_the_qualified_exception_class():

    from agentstream.observability.tracing import error_type

    assert (
        error_type(agentstream.RateLimitedError("429")) == "agentstream.failures.RateLimitedError"
    )
    assert error_type(TimeoutError()) == "TimeoutError"


def traced_app(tmp_path: Path, **otel: str) -> dict[str, str]:
    """An app file on the embedded log with one event waiting; the environment to run it."""
    db = tmp_path / "as.db"
    app_file = tmp_path / "traced_app.py"
    app_file.write_text(
        "import agentstream\n"
        "from agentstream.llm.simulator import SimulatedProvider\n"
        f"app = agentstream.App('traced', broker='sqlite:///{db}', llm=SimulatedProvider())\n"
        "@app.agent(source='tickets', identity='header:ce_id')\n"
        "async def triage(ctx, payload: dict) -> None:\n"
        "    await ctx.llm(user='hello')\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OTEL_SERVICE_NAME": "triage-svc",
        **otel,
    }
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"text": "hi"}\n')
    produce = [sys.executable, "-m", "agentstream", "produce", "tickets", str(feed)]
    subprocess.run([*produce, "--broker", f"sqlite:///{db}"], env=env, check=True, timeout=60)
    return env


def test_run_with_trace_prints_spans_with_the_console_exporter(tmp_path: Path):
    env = traced_app(tmp_path, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    # When it runs with --trace until the event is done (then SIGINT stops it)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentstream", "run", "traced_app:app", "--trace"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out = _read_until(proc, '"name": "process tickets"', timeout_s=60)
    finally:
        proc.send_signal(2)
        rest, _ = proc.communicate(timeout=30)
    out += rest.decode()
    # Then the console exporter printed the consumer and model-call spans
    assert '"name": "process tickets"' in out
    assert '"name": "chat sim-1"' in out
    assert '"messaging.system": "agentstream_embedded"' in out
    assert '"service.name": "triage-svc"' in out


def test_run_with_trace_sends_spans_and_genai_metrics_over_otlp(tmp_path: Path):
    # Given an OTLP/HTTP collector stand-in on loopback and the standard OTLP settings
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    with otlp_collector() as (endpoint, received):
        env = traced_app(
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_METRIC_EXPORT_INTERVAL="300",
        )
        env.pop("OTEL_TRACES_EXPORTER", None)  # unset: OTLP, since the exporter is installed
        env.pop("OTEL_METRICS_EXPORTER", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentstream", "run", "traced_app:app", "--trace"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def names() -> tuple[set[str], set[str]]:
            spans, metrics = set(), set()
            for path, body in list(received):
                if path == "/v1/traces":
                    req = ExportTraceServiceRequest.FromString(body)
                    spans |= {
                        s.name for r in req.resource_spans for ss in r.scope_spans for s in ss.spans
                    }
                elif path == "/v1/metrics":
                    mreq = ExportMetricsServiceRequest.FromString(body)
                    metrics |= {
                        m.name
                        for r in mreq.resource_metrics
                        for sm in r.scope_metrics
                        for m in sm.metrics
                    }
            return spans, metrics

        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                spans, metrics = names()
                if {"process tickets", "chat sim-1"} <= spans and (
                    "gen_ai.client.token.usage" in metrics
                ):
                    break
                time.sleep(0.2)
        finally:
            proc.send_signal(2)
            proc.wait(timeout=30)
    # Then the spans and the GenAI metrics left the process over OTLP
    spans, metrics = names()
    assert {"process tickets", "chat sim-1"} <= spans
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= metrics


@contextmanager
def otlp_collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """An OTLP/HTTP receiver on loopback that keeps every request body (protobuf)."""
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _read_until(proc: subprocess.Popen[bytes], needle: str, timeout_s: float) -> str:
    """What the process printed until ``needle`` appeared (raw reads: no buffered lines)."""
    import selectors
    import time

    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout_s
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    while needle.encode() not in seen and time.monotonic() < deadline:
        if sel.select(timeout=0.5):
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
    return seen.decode()
