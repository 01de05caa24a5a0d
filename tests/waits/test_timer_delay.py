"""Durable timers fire within a bounded delay on the embedded log, Kafka and SQS.

Five events each ``ctx.sleep(1.0)``; the time the sleep began is journaled by a step before
it, so the resumed handler measures the real delay from the sleep's start to its resumption.
The bound is generous (the wake-up poll is 0.05 s here, 0.2 s by default; the rest is claim
and scheduling); the figures are printed.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import pytest
from pydantic import BaseModel

from agentstream import App, Context
from agentstream.testing import AppHarness
from tests.conformance.conftest import KAFKA_TEST_SETTINGS
from tests.sqs.conftest import make_queue
from tests.waits.apps import FAST

SLEEP_S, EVENTS, BOUND_S = 1.0, 5, 3.0


class Nap(BaseModel):
    id: str


def napping_app(broker: str, store: str, source: str, delays: dict[str, float]) -> App:
    app = App(f"timers{uuid.uuid4().hex[:6]}", broker=broker, store=store, config=FAST)

    @app.agent(source=source, identity=lambda n: n.id)
    async def nap(ctx: Context, n: Nap) -> None:
        began = await ctx.step("began", time.time)
        await ctx.sleep(SLEEP_S)
        delays[n.id] = time.time() - began

    return app


@pytest.fixture(params=["embedded", "kafka", "sqs"])
async def transport(request, tmp_path, pg_url):  # type: ignore[no-untyped-def]
    name = f"naps{uuid.uuid4().hex[:8]}"
    if request.param == "embedded":
        url = f"sqlite:///{tmp_path / 'as.db'}"
        return url, url, name
    if request.param == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        return f"kafka://{bootstrap}?{KAFKA_TEST_SETTINGS}", pg_url, name
    endpoint = request.getfixturevalue("sqs_endpoint")
    base = f"sqs://test:test@{endpoint.split('://', 1)[1]}?region=us-east-1&wait_time=1"
    await make_queue(base, name)
    return base, pg_url, name


async def test_a_durable_sleep_resumes_within_a_bounded_delay(transport, request) -> None:
    broker, store, source = transport
    delays: dict[str, float] = {}
    app = napping_app(broker, store, source, delays)
    async with AppHarness(app) as h:
        await h.produce(source, [Nap(id=f"n{i}") for i in range(EVENTS)])
        deadline = time.monotonic() + 60
        while len(delays) < EVENTS:
            assert time.monotonic() < deadline, f"timers fired: {sorted(delays)}"
            await asyncio.sleep(0.05)
    late = [d - SLEEP_S for d in delays.values()]
    print(f"\ntimer lateness on {request.node.callspec.id}: median {statistics.median(late):.3f}s,"
          f" max {max(late):.3f}s")  # fmt: skip
    assert all(0.0 <= x < BOUND_S for x in late), late
