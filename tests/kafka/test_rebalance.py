"""Two members of one group: partitions move when the second joins; nothing is lost or redone."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from agentstream import App, Context
from agentstream.journal.sqlite import SqliteStore
from agentstream.outputs import EVENT_ID_HEADER
from agentstream.testing import AppHarness
from agentstream.transports.kafka import KafkaTransport
from tests.kafka.conftest import read_topic
from tests.runtime.helpers import FAST, Outcomes, Ticket, tickets

EVENTS = 240


def member(name: str, url: str, db_url: str, runs: list[tuple[str, str]], who: str) -> App:
    """One group member (its own App object and backends, like another process)."""
    app = App(name, broker=url, store=db_url, config=FAST, middleware=[Outcomes()])

    @app.agent(
        source=f"{name}-tickets",
        key=lambda t: t.customer_id,
        identity=lambda t: t.ticket_id,
        output=f"{name}-done",
        concurrency=4,
    )
    async def work(ctx: Context, t: Ticket) -> dict[str, str]:
        runs.append((t.ticket_id, who))
        await asyncio.sleep(0.2)
        return {"ticket": t.ticket_id}

    return app


def transport_of(h: AppHarness) -> KafkaTransport:
    (worker,) = h.workers
    assert isinstance(worker.transport, KafkaTransport)
    return worker.transport


async def test_a_second_member_takes_partitions_over_without_losing_or_redoing_events(
    kafka_url, kafka_bootstrap, db_url, db_path, name
):
    runs: list[tuple[str, str]] = []
    first = AppHarness(member(name, kafka_url, db_url, runs, "first"))
    second = AppHarness(member(name, kafka_url, db_url, runs, "second"))
    batch = tickets(EVENTS, keys=30)
    await first.start()
    try:
        # Given one member working through a backlog
        await first.produce(f"{name}-tickets", batch, key=lambda t: t.customer_id)
        deadline = time.monotonic() + 30
        while len(runs) < 40:
            assert time.monotonic() < deadline, "the first member did not start working"
            await asyncio.sleep(0.02)
        # When a second member joins the group mid-stream
        await second.start()
        await first.wait_drained()
        await second.wait_drained()
        a, b = transport_of(first), transport_of(second)
        owned_a, owned_b = set(a.assignment()), set(b.assignment())
    finally:
        await first.stop()
        await second.stop()
    # Then partitions moved: the first member gave some up, the second owns them
    assert a.revocations >= 1 and b.assignments >= 1
    assert owned_a and owned_b and not owned_a & owned_b
    assert {who for _, who in runs} == {"first", "second"}
    # And every event ran its handler exactly once (redeliveries were recognised as done)
    assert Counter(ticket for ticket, _ in runs) == Counter(t.ticket_id for t in batch)
    store = SqliteStore(db_path)
    await store.open()
    try:
        counts = await store.counts("work")
    finally:
        await store.close()
    assert counts["completed"] == EVENTS and counts["outbox_pending"] == 0
    # And each event's output is on the broker exactly once
    outputs = read_topic(kafka_bootstrap, f"{name}-done", want=EVENTS)
    assert Counter(m.header(EVENT_ID_HEADER).decode() for m in outputs) == Counter(
        t.ticket_id for t in batch
    )
