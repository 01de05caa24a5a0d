"""An App on kafka:// with the SQLite journal, end to end through the real runtime."""

from __future__ import annotations

from agentstream import App, Context
from agentstream.journal.sqlite import SqliteStore
from agentstream.outputs import EVENT_ID_HEADER
from agentstream.testing import AppHarness
from agentstream.transports.kafka import KafkaTransport
from tests.kafka.conftest import read_topic
from tests.runtime.helpers import FAST, Decision, Outcomes, Ticket, simulated, tickets


async def test_an_app_on_kafka_decides_each_event_once_and_publishes_each_output_once(
    kafka_url, kafka_bootstrap, db_url, db_path, name
):
    # Given an agent on a Kafka topic, journaling in SQLite
    provider = simulated()
    outcomes = Outcomes()
    app = App(
        name, broker=kafka_url, store=db_url, llm=provider, config=FAST, middleware=[outcomes]
    )
    handled: list[str] = []

    @app.agent(
        source=f"{name}-tickets",
        key=lambda t: t.customer_id,
        identity=lambda t: t.ticket_id,
        output=f"{name}-decisions",
    )
    async def triage(ctx: Context, t: Ticket) -> Decision:
        handled.append(t.ticket_id)
        return await ctx.llm.parse(Decision, user=t.text)

    batch = tickets(40, keys=7)
    async with AppHarness(app) as h:
        (worker,) = h.workers
        assert isinstance(worker.transport, KafkaTransport)
        # When every ticket is produced twice (a producer retry), the copies in a second batch
        await h.produce(f"{name}-tickets", batch, key=lambda t: t.customer_id)
        await h.wait_drained()
        await h.produce(f"{name}-tickets", batch, key=lambda t: t.customer_id)
        await h.wait_drained()
    # Then each ticket was handled once and the copies got the recorded decision
    assert sorted(handled) == sorted(t.ticket_id for t in batch)
    assert provider.simulator.stats["requests"] == 40
    assert outcomes.counts["completed"] == 40 and outcomes.counts["duplicate"] == 40
    # And the broker holds exactly one output per ticket, carrying the event identity
    outputs = read_topic(kafka_bootstrap, f"{name}-decisions", want=40)
    assert sorted(m.header(EVENT_ID_HEADER).decode() for m in outputs) == sorted(
        t.ticket_id for t in batch
    )
    store = SqliteStore(db_path)
    await store.open()
    try:
        counts = await store.counts("triage")
        assert counts["completed"] == 40 and counts["outbox_pending"] == 0
    finally:
        await store.close()


async def test_per_key_order_holds_on_kafka(kafka_url, db_url, name):
    # Given an agent whose events of one customer must run in order
    app = App(name, broker=kafka_url, store=db_url, llm=simulated(), config=FAST)
    seen: dict[str, list[int]] = {}

    @app.agent(
        source=f"{name}-tickets",
        key=lambda t: t.customer_id,
        identity=lambda t: t.ticket_id,
        concurrency=32,
    )
    async def triage(ctx: Context, t: Ticket) -> None:
        seen.setdefault(t.customer_id, []).append(t.seq)
        await ctx.llm.parse(Decision, user=t.text)

    batch = tickets(90, keys=6)
    async with AppHarness(app) as h:
        await h.produce(f"{name}-tickets", batch, key=lambda t: t.customer_id)
        await h.wait_drained()
    # Then every customer's tickets ran in their sequence order, each once
    assert {c: len(s) for c, s in seen.items()} == {f"c{i}": 15 for i in range(6)}
    assert all(s == sorted(s) for s in seen.values())


async def test_cloudevents_ce_id_header_identifies_producer_duplicates_on_kafka(
    kafka_url, db_url, name
):
    # Given an agent without an identity function, and events carrying a CloudEvents ce_id
    app = App(name, broker=kafka_url, store=db_url, config=FAST)
    handled: list[str] = []

    @app.agent(source=f"{name}-tickets", key=lambda t: t.customer_id)
    async def triage(ctx: Context, t: Ticket) -> None:
        handled.append(t.ticket_id)

    batch = tickets(20, keys=4)
    async with AppHarness(app) as h:
        # When every event is produced twice with the same ce_id (different offsets)
        for _ in range(2):
            await h.produce(
                f"{name}-tickets",
                batch,
                key=lambda t: t.customer_id,
                headers=lambda t: {"ce_id": f"evt-{t.ticket_id}"},
            )
        await h.wait_drained()
    # Then the header identity made the second copy a duplicate: each ticket handled once
    assert sorted(handled) == sorted(t.ticket_id for t in batch)
