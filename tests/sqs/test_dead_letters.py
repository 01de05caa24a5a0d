"""Dead letters on SQS: agentstream's record and queue, alongside the queue's redrive policy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import agentstream
from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from tests.sqs.conftest import drain, make_queue, redrive
from tests.sqs.raw import RawSQS


async def test_the_last_receive_the_redrive_policy_allows_is_dead_lettered_by_agentstream(
    sqs_url, raw: RawSQS, qname, tmp_path: Path
):
    # Given a queue whose redrive policy moves a message after 2 receives
    await make_queue(sqs_url, f"{qname}-sqs-dlq")
    await make_queue(sqs_url, f"{qname}-dlq")
    sqs_dlq = await raw.arn(f"{qname}-sqs-dlq")
    await make_queue(sqs_url, qname, {"VisibilityTimeout": "5", **redrive(sqs_dlq, 2)})
    # and an event whose first receive went to a worker that died (never deleted, visibility lapsed)
    await raw.send(qname, '{"id": "crashed"}')
    (lost,) = await raw.receive(qname, visibility=1)
    assert lost["Attributes"]["ApproximateReceiveCount"] == "1"
    await raw.send(qname, '{"id": "fresh"}')
    await asyncio.sleep(1.2)

    handled: list[str] = []
    journal = tmp_path / "j.db"
    app = agentstream.App("dl", broker=sqs_url, store=f"sqlite:///{journal}")

    @app.agent(source=qname, identity=lambda p: p["id"], dead_letter=f"{qname}-dlq")
    async def work(ctx: agentstream.Context, payload: dict) -> None:
        handled.append(ctx.identity)

    # When a worker receives both
    async with AppHarness(app) as h:
        await raw.send(qname, '{"id": "later"}')
        await h.wait_drained(timeout_s=30)

    # Then the fresh events ran, the crashed one was dead-lettered on its last allowed receive
    assert sorted(handled) == ["fresh", "later"]
    store = SqliteStore(journal)
    await store.open()
    try:
        (dead,) = await store.dead_letters(agent="work")
    finally:
        await store.close()
    assert dead.event_id == "crashed" and dead.failure_class == "attempts_exhausted"
    assert dead.envelope["source"]["delivery_count"] == 2
    assert dead.envelope["source"]["max_deliveries"] == 2
    assert "maxReceiveCount 2" in dead.envelope["exception"]["message"]
    # with agentstream's dead-letter record on its queue, original bytes untouched,
    (record,) = await drain(sqs_url, f"{qname}-dlq")
    assert record.value == b'{"id": "crashed"}'
    assert record.header("agentstream-dlq-event-id") == b"crashed"
    assert record.header("agentstream-dlq-delivery-count") == b"2"
    # and nothing left for the queue's own redrive policy to move.
    assert await raw.depth(qname) == 0
    assert await raw.depth(f"{qname}-sqs-dlq") == 0


async def test_a_poison_event_goes_to_a_fifo_dead_letter_queue_once_with_its_context(
    sqs_url, raw: RawSQS, qname, tmp_path: Path
):
    await make_queue(sqs_url, f"{qname}.fifo", {"VisibilityTimeout": "5"})
    await make_queue(sqs_url, f"{qname}-dlq.fifo")
    app = agentstream.App("dl", broker=sqs_url, store=f"sqlite:///{tmp_path / 'j.db'}")

    @app.agent(source=f"{qname}.fifo", dead_letter=f"{qname}-dlq.fifo")
    async def strict(ctx: agentstream.Context, payload: dict) -> None:
        raise AssertionError("poison never reaches the handler")

    async with AppHarness(app) as h:
        await raw.send(
            f"{qname}.fifo",
            "{not json",
            MessageGroupId="customer-9",
            MessageDeduplicationId="evt-1",
        )
        await h.wait_drained(timeout_s=30)
    (record,) = await drain(sqs_url, f"{qname}-dlq.fifo")
    assert record.value == b"{not json"
    assert record.key == b"customer-9"  # the group id, kept as the dead letter's group
    assert record.header("agentstream-dlq-event-id") == b"evt-1"  # the deduplication id
    assert record.header("agentstream-dlq-failure-class") == b"poison"
    assert record.header("kafka_dlt-original-topic") == f"{qname}.fifo".encode()
    assert json.loads(record.header("agentstream-dlq-attempts") or b"0") == 1
