"""A handler that runs longer than max.poll.interval.ms causes no rebalance and no redelivery.

The worker pauses its partitions while the handler runs (a buffer of one event) and keeps
polling, so librdkafka never sees the poll interval exceeded.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from agentstream import App, Context
from agentstream.testing import AppHarness
from agentstream.transports.kafka import KafkaTransport
from tests.runtime.helpers import FAST, Ticket

MAX_POLL_INTERVAL_MS = 7000
HANDLER_S = 1.5 * MAX_POLL_INTERVAL_MS / 1000


async def test_a_handler_longer_than_max_poll_interval_is_neither_rebalanced_nor_redelivered(
    kafka_url, db_url, tmp_path: Path, name
):
    # Given a worker whose poll interval limit is 7 s and whose buffer holds one event
    calls = tmp_path / "calls.txt"
    url = f"{kafka_url}&max.poll.interval.ms={MAX_POLL_INTERVAL_MS}"
    config = FAST.model_copy(update={"max_buffered": 1, "resume_ratio": 1.0})
    app = App(name, broker=url, store=db_url, config=config)

    @app.agent(source=f"{name}-jobs", identity=lambda t: t.ticket_id, key=lambda t: t.customer_id)
    async def slow(ctx: Context, t: Ticket) -> None:
        with calls.open("a") as f:
            f.write(f"{t.ticket_id}\n")
        if t.ticket_id == "long":
            await asyncio.sleep(HANDLER_S)

    async with AppHarness(app) as h:
        (worker,) = h.workers
        transport = worker.transport
        assert isinstance(transport, KafkaTransport)
        # When a 10.5 s event and a short one behind it are produced
        await h.produce(
            f"{name}-jobs",
            [Ticket(ticket_id="long", customer_id="a"), Ticket(ticket_id="after", customer_id="a")],
            key=lambda t: t.customer_id,  # one partition: "after" is delivered behind "long"
        )
        paused_seen = False
        started = time.monotonic()
        while not _lines(calls):
            assert time.monotonic() - started < 60, "the long event was not delivered"
            await asyncio.sleep(0.02)
        assignments_before = transport.assignments
        while _lines(calls)[-1:] != ["after"]:
            paused_seen = paused_seen or transport.paused
            assert time.monotonic() - started < 60, "the events did not complete"
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        await h.wait_drained()
        # Give a late redelivery (after an eviction) the time to show up
        await asyncio.sleep(2.0)
    # Then the long handler really outlived the poll interval, while consumption was paused
    assert elapsed > MAX_POLL_INTERVAL_MS / 1000
    assert paused_seen
    # And the member kept its partitions: no revocation, no new assignment, no second delivery
    counters = f"assignments={transport.assignments} (before {assignments_before}), "
    counters += f"revocations={transport.revocations}, calls={_lines(calls)}"
    assert transport.revocations == 0, counters
    assert transport.assignments == assignments_before, counters
    assert _lines(calls) == ["long", "after"]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
