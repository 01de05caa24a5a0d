"""FIFO queues: message groups are the ordering key; outputs carry group and deduplication ids."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import agentstream
from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from agentstream.transports.sqs import SQSTransport
from agentstream.transports.sqs_codec import fifo_id
from agentstream.transports.sqs_config import parse_sqs_url
from tests.sqs.conftest import make_queue
from tests.sqs.raw import RawSQS


async def test_events_of_a_message_group_run_in_order_while_groups_run_in_parallel(
    sqs_url, raw: RawSQS, qname, tmp_path: Path
):
    queue = f"{qname}.fifo"
    await make_queue(sqs_url, queue, {"VisibilityTimeout": "10"})
    seen: dict[str, list[int]] = {}
    running = 0
    most_running = 0
    rng = random.Random(7)
    app = agentstream.App("fifo", broker=sqs_url, store=f"sqlite:///{tmp_path / 'j.db'}")

    @app.agent(source=queue, concurrency=8)
    async def ordered(ctx: agentstream.Context, payload: dict) -> None:
        nonlocal running, most_running
        running += 1
        most_running = max(most_running, running)
        assert ctx.event.key == payload["group"]  # the MessageGroupId is the ordering key
        await asyncio.sleep(rng.uniform(0, 0.03))
        seen.setdefault(payload["group"], []).append(payload["n"])
        running -= 1

    groups = [f"g{i}" for i in range(4)]
    async with AppHarness(app) as h:
        for n in range(15):
            for g in groups:
                await raw.send(
                    queue,
                    f'{{"group": "{g}", "n": {n}}}',
                    MessageGroupId=g,
                    MessageDeduplicationId=f"{g}-{n}",
                )
        await h.wait_drained(timeout_s=60)
    assert seen == {g: list(range(15)) for g in groups}
    assert most_running > 1


async def test_outputs_to_a_fifo_queue_are_grouped_by_key_and_a_re_publish_is_dropped(
    sqs_url, raw: RawSQS, qname, tmp_path: Path
):
    await make_queue(sqs_url, qname)
    await make_queue(sqs_url, f"{qname}-out.fifo")
    journal = tmp_path / "j.db"
    app = agentstream.App("out", broker=sqs_url, store=f"sqlite:///{journal}")

    @app.agent(
        source=qname,
        identity=lambda p: p["id"],
        key=lambda p: p["customer"],
        output=f"{qname}-out.fifo",
    )
    async def decide(ctx: agentstream.Context, payload: dict) -> dict:
        return {"id": payload["id"], "approved": True}

    async with AppHarness(app) as h:
        for i in range(3):
            await raw.send(qname, f'{{"id": "e{i}", "customer": "c{i % 2}"}}')
        await h.wait_drained(timeout_s=30)
    assert await raw.depth(f"{qname}-out.fifo") == 3

    # A relay that crashed after producing but before marking the rows re-publishes them:
    store = SqliteStore(journal)
    await store.open()
    try:
        rows = [row for i in range(3) for row in await store.outbox("decide", f"e{i}")]
    finally:
        await store.close()
    t = SQSTransport(parse_sqs_url(sqs_url))
    try:
        await t.produce([row.record for row in rows])
    finally:
        await t.close()
    assert await raw.depth(f"{qname}-out.fifo") == 3  # the deduplication ids dropped the repeats

    got = []
    while len(got) < 3:
        got += await raw.receive(f"{qname}-out.fifo", wait=1)
    by_id = {m["MessageAttributes"]["agentstream-event-id"]["StringValue"]: m for m in got}
    for i in range(3):
        attrs = by_id[f"e{i}"]["Attributes"]
        assert attrs["MessageGroupId"] == f"c{i % 2}"
        assert attrs["MessageDeduplicationId"] == fifo_id(f"decide:e{i}:0")
