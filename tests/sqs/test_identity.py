"""Identity on SQS: a message attribute, a payload function, the deduplication id, the MessageId."""

from __future__ import annotations

import logging
from pathlib import Path

import agentstream
from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from tests.sqs.conftest import make_queue
from tests.sqs.raw import RawSQS


async def _event_ids(journal: Path, agent: str) -> list[str]:
    store = SqliteStore(journal)
    await store.open()
    try:
        return sorted(e.event_id for e in await store.list_events(agent=agent))
    finally:
        await store.close()


async def test_a_configured_message_attribute_makes_a_producer_duplicate_run_once(
    sqs_url, raw: RawSQS, qname, tmp_path: Path
):
    await make_queue(sqs_url, qname)
    calls: list[str] = []
    journal = tmp_path / "j.db"
    app = agentstream.App("ids", broker=sqs_url, store=f"sqlite:///{journal}")

    @app.agent(source=qname, identity="header:event-id")
    async def once(ctx: agentstream.Context, payload: dict) -> None:
        calls.append(ctx.identity)

    attribute = {"event-id": {"DataType": "String", "StringValue": "order-7"}}
    async with AppHarness(app) as h:
        await raw.send(qname, '{"n": 1}', MessageAttributes=attribute)
        await raw.send(qname, '{"n": 1}', MessageAttributes=attribute)  # the producer retried
        await h.wait_drained(timeout_s=30)
    assert calls == ["order-7"]
    assert await _event_ids(journal, "once") == ["order-7"]
    assert await raw.depth(qname) == 0  # the duplicate was deleted too


async def test_a_fifo_deduplication_id_is_the_identity_when_nothing_else_names_the_event(
    sqs_url, raw: RawSQS, qname, tmp_path: Path, caplog
):
    queue = f"{qname}.fifo"
    await make_queue(sqs_url, queue)
    journal = tmp_path / "j.db"
    app = agentstream.App("ids", broker=sqs_url, store=f"sqlite:///{journal}")

    @app.agent(source=queue)
    async def dedup(ctx: agentstream.Context, payload: dict) -> None:
        return None

    with caplog.at_level(logging.WARNING, logger="agentstream.worker"):
        async with AppHarness(app) as h:
            await raw.send(queue, "{}", MessageGroupId="g", MessageDeduplicationId="order-42")
            await h.wait_drained(timeout_s=30)
    assert await _event_ids(journal, "dedup") == ["order-42"]
    assert "does not catch producer duplicates" not in caplog.text


async def test_without_any_id_the_message_id_is_the_identity_and_a_warning_says_so(
    sqs_url, raw: RawSQS, qname, tmp_path: Path, caplog
):
    await make_queue(sqs_url, qname)
    journal = tmp_path / "j.db"
    app = agentstream.App("ids", broker=sqs_url, store=f"sqlite:///{journal}")

    @app.agent(source=qname)
    async def anonymous(ctx: agentstream.Context, payload: dict) -> None:
        return None

    with caplog.at_level(logging.WARNING, logger="agentstream.worker"):
        async with AppHarness(app) as h:
            message_id = await raw.send(qname, "{}")
            await h.wait_drained(timeout_s=30)
    assert await _event_ids(journal, "anonymous") == [message_id]
    assert "the broker's message id" in caplog.text
    assert "does not catch producer duplicates" in caplog.text
