"""Metrics scraped over HTTP match a run; traces nest steps under the event span and follow
message headers; JSON log lines carry the event identity."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from agentstream.journal.sqlite import SqliteStore
from agentstream.observability import (
    EventLogMiddleware,
    JsonFormatter,
    PrometheusMiddleware,
    TracingMiddleware,
)
from agentstream.testing import AppHarness
from tests.ops.apps import FAST, calls, make_app, tickets

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "agent"))
            out[(sample.name, labels)] = sample.value
    return out


def total(metrics: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= set(ls))


async def test_metrics_scraped_over_http_match_the_counts_of_a_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    metrics = PrometheusMiddleware(port=0)
    config = FAST.model_copy(update={"lag_interval_s": 0.05})
    app = make_app(url, tmp_path, fixed=False, middleware=[metrics], config=config)
    batch = tickets(
        *[(f"t{i}", f"c{i % 3}", False) for i in range(8)],
        ("bug1", "c0", True),
        ("flaky1", "c1", False),
    )
    async with AppHarness(app) as h:
        await h.produce("tickets", batch, key=lambda t: t.customer)
        await h.wait_drained()
        await h.produce("tickets", batch[:2], key=lambda t: t.customer)  # two duplicates
        await h.wait_drained()
        await asyncio.sleep(0.2)  # a poll turn to refresh lag and in-flight gauges
        scraped = await asyncio.to_thread(scrape, metrics.port)
    store = SqliteStore(tmp_path / "as.db")
    await store.open()
    try:
        events = await store.list_events(limit=None)
        steps = [s for e in events for s in await store.steps(e.agent, e.event_id)]
    finally:
        await store.close()
    sim_calls = calls(tmp_path / "calls.db")
    assert total(scraped, "agentstream_deliveries_total", outcome="completed") == 9
    assert total(scraped, "agentstream_deliveries_total", outcome="dead_lettered") == 1
    assert total(scraped, "agentstream_deliveries_total", outcome="retry") == 1
    assert total(scraped, "agentstream_deliveries_total", outcome="duplicate") == 2
    assert total(scraped, "agentstream_retries_total", failure_class="transient") == 1
    assert total(scraped, "agentstream_dead_letters_total", failure_class="agent_error") == 1
    assert total(scraped, "agentstream_llm_calls_total", status="ok") == len(sim_calls) == 10
    assert total(scraped, "agentstream_llm_calls_avoided_total") == 1  # flaky1's retry
    tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in sim_calls)
    assert total(scraped, "agentstream_llm_tokens_total") == tokens
    cost = sum(s.meta.get("cost_usd", 0.0) for s in steps)
    assert abs(total(scraped, "agentstream_llm_cost_usd_total") - cost) < 1e-12
    # every journaled step, live or replayed, is in the latency histogram
    assert total(scraped, "agentstream_step_seconds_count") == len(steps) + 1
    assert total(scraped, "agentstream_consumer_lag") == 0
    assert total(scraped, "agentstream_in_flight") == 0
    assert ("agentstream_consumer_lag", (("partition", "0"), ("topic", "tickets"))) in scraped
    # the one worker was assigned its partition once and never lost it
    assert total(scraped, "agentstream_rebalances_total", change="assigned") == 1
    assert total(scraped, "agentstream_rebalances_total", change="revoked") == 0


async def test_a_trace_shows_the_event_span_its_steps_and_flows_through_headers(tmp_path):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    url = f"sqlite:///{tmp_path / 'as.db'}"
    app = make_app(
        url, tmp_path, fixed=True, middleware=[TracingMiddleware(tracer_provider=provider)]
    )
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN}-01"
    async with AppHarness(app) as h:
        await h.produce(
            "tickets",
            tickets(("t1", "alice", False)),
            key=lambda t: t.customer,
            headers=lambda t: {"traceparent": traceparent},
        )
        await h.wait_drained()
        [output] = h.read("triage")
    spans = exporter.get_finished_spans()
    [event_span] = [s for s in spans if s.name == "process tickets"]
    assert format(event_span.context.trace_id, "032x") == TRACE_ID
    assert format(event_span.parent.span_id, "016x") == PARENT_SPAN
    assert event_span.attributes["agentstream.event_id"] == "t1"
    assert event_span.attributes["agentstream.outcome"] == "completed"
    children = [s for s in spans if s.parent and s.parent.span_id == event_span.context.span_id]
    assert sorted(s.name for s in children) == ["chat sim-1", "effect record"]
    [llm] = [s for s in children if s.name == "chat sim-1"]
    assert llm.attributes["gen_ai.usage.input_tokens"] > 0
    # the output carries the event span's context to the next consumer
    out_parent = output.header("traceparent").decode().split("-")
    assert out_parent[1] == TRACE_ID and out_parent[2] == format(event_span.context.span_id, "016x")


async def test_json_log_lines_carry_the_event_identity(tmp_path):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("agentstream")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        url = f"sqlite:///{tmp_path / 'as.db'}"
        app = make_app(url, tmp_path, fixed=False, middleware=[EventLogMiddleware()])
        async with AppHarness(app) as h:
            await h.produce("tickets", tickets(("bug7", "bob", True)), key=lambda t: t.customer)
            await h.wait_drained()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [dead] = [x for x in lines if "dead-lettered" in x["msg"]]
    assert (dead["agent"], dead["event_id"], dead["key"], dead["level"]) == (
        "triage",
        "bug7",
        "bob",
        "WARNING",
    )
    assert dead["source"].startswith("tickets/")
    outside = [x for x in lines if "assigned" in x["msg"]]
    assert outside and all("event_id" not in x for x in outside)
