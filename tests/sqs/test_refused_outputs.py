"""A record the broker refuses stays in the outbox without holding up the others, in key order."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import agentstream
from agentstream.event import OutgoingRecord
from agentstream.journal import Completion
from agentstream.journal.sqlite import SqliteStore
from agentstream.runtime.relay import OutboxRelay
from agentstream.testing import AppHarness
from agentstream.transports.sqs import SQSTransport
from agentstream.transports.sqs_config import parse_sqs_url
from tests.conformance.test_store import META
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


async def test_refused_rows_leave_the_relay_window_and_acknowledged_ones_are_not_resent(
    sqs_url, qname, tmp_path: Path
):
    # Given outbox rows alternating between a FIFO queue that does not exist yet (one key)
    # and an existing queue, and a relay that claims three rows at a time
    bad, good = f"{qname}-bad.fifo", f"{qname}-good"
    await make_queue(sqs_url, good)
    store = SqliteStore(tmp_path / "j.db")
    await store.open()
    transport = SQSTransport(parse_sqs_url(sqs_url))
    try:
        for n, topic in enumerate([bad, good, bad, good, bad, good]):
            claim = await store.claim("a", f"e{n}", owner="w", lease_s=30, meta=META)
            record = OutgoingRecord(topic, b"k" if topic == bad else None, str(n).encode())
            await store.complete("a", f"e{n}", claim.epoch, Completion(outputs=[record]))
        relay = OutboxRelay(store, transport, owner="r", batch=3, hold_initial_s=0.5)
        # When it runs while the FIFO queue is missing
        await relay.flush()  # rows 0-2: 1 goes through, 0 is refused, 2 waits behind it
        await relay.flush()  # rows 3-5: 4 is deferred behind 0, 3 and 5 go through
        # Then every record to the existing queue went out exactly once, none stalled,
        got = await drain(sqs_url, good)
        assert sorted(m.value for m in got) == [b"1", b"3", b"5"]
        assert (await store.counts("a"))["outbox_pending"] == 3
        # and once the queue exists the refused record and those behind it go, in order.
        await make_queue(sqs_url, bad)
        deadline = time.monotonic() + 30
        while (await store.counts("a"))["outbox_pending"]:
            assert time.monotonic() < deadline, "refused records never went out"
            await asyncio.sleep(0.3)
            await relay.flush()
        assert [m.value for m in await drain(sqs_url, bad)] == [b"0", b"2", b"4"]
        assert relay.held == 0
    finally:
        await transport.close()
        await store.close()
