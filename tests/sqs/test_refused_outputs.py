"""A record the broker refuses stays in the outbox without holding up the others, in key order."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import agentstream
from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from tests.sqs.conftest import drain, make_queue
from tests.sqs.raw import RawSQS


async def test_an_output_to_a_missing_queue_waits_in_the_outbox_and_blocks_nothing_else(
    sqs_url, raw: RawSQS, qname, tmp_path: Path
):
    # Given an agent whose events 2 and 4 also emit, under one key, to a FIFO queue that does
    # not exist yet, while every event emits its decision to an existing queue
    source, out, later = qname, f"{qname}-out", f"{qname}-later.fifo"
    await make_queue(sqs_url, source)
    await make_queue(sqs_url, out)
    journal = tmp_path / "j.db"
    app = agentstream.App("refused", broker=sqs_url, store=f"sqlite:///{journal}")

    @app.agent(source=source, output=out, identity=lambda p: p["id"])
    async def decide(ctx: agentstream.Context, p: dict) -> dict:
        if p["n"] in (2, 4):
            ctx.emit({"n": p["n"]}, topic=later, key="lane")
        return {"n": p["n"]}

    async with AppHarness(app):
        for n in range(1, 7):
            await raw.send(source, json.dumps({"id": f"e{n}", "n": n}))
        # When the relay publishes: the refused records stay pending, the rest go through
        store = SqliteStore(journal)
        await store.open()
        try:
            deadline = time.monotonic() + 30
            while True:
                counts = await store.counts("decide")
                if counts["completed"] == 6 and counts["outbox_pending"] == 2:
                    break
                assert time.monotonic() < deadline, counts
                await asyncio.sleep(0.1)
            decisions = await drain(sqs_url, out)
            assert sorted(json.loads(m.value)["n"] for m in decisions) == [1, 2, 3, 4, 5, 6]
            await asyncio.sleep(1.5)  # the relay keeps trying; nothing is dropped meanwhile
            assert (await store.counts("decide"))["outbox_pending"] == 2
            # and once the operator creates the queue, both arrive, in their key's order.
            await make_queue(sqs_url, later)
            deadline = time.monotonic() + 30
            while (await store.counts("decide"))["outbox_pending"]:
                assert time.monotonic() < deadline, "refused records never went out"
                await asyncio.sleep(0.2)
        finally:
            await store.close()
        late = await drain(sqs_url, later)
        assert [json.loads(m.value)["n"] for m in late] == [2, 4]
