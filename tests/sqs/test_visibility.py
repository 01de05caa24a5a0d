"""Visibility: held messages never reappear while worked on; close() gives them back at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import agentstream
from agentstream.failures import ConfigurationError
from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from agentstream.transports.base import IgnoreRebalance
from agentstream.transports.sqs import SQSTransport
from agentstream.transports.sqs_config import parse_sqs_url
from tests.sqs.conftest import make_queue, redrive
from tests.sqs.raw import RawSQS


async def _subscribed(url: str, name: str) -> SQSTransport:
    t = SQSTransport(parse_sqs_url(url))
    await t.subscribe([name], "g", IgnoreRebalance())
    return t


async def _poll_until(t: SQSTransport, want: int, timeout_s: float = 10.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got.extend(await t.poll(10, 0.2))
    return got


async def test_a_held_message_stays_invisible_for_three_visibility_timeouts(
    sqs_url, raw: RawSQS, qname
):
    # Given a queue whose messages are invisible for 2 s after a receive
    await make_queue(sqs_url, qname, {"VisibilityTimeout": "2"})
    await raw.send(qname, "slow work")
    t = await _subscribed(sqs_url, qname)
    try:
        (message,) = await _poll_until(t, 1)
        assert message.delivery_count == 1
        # When the consumer holds it for 6.5 s without acknowledging it
        seen_by_others = []
        deadline = time.monotonic() + 6.5
        while time.monotonic() < deadline:
            seen_by_others += await raw.receive(qname, visibility=30)
            await asyncio.sleep(0.3)
        # Then no other consumer ever received it: the heartbeat kept extending it
        assert seen_by_others == []
        assert t.extended >= 6
        t.ack(message)
        await t.commit()
        assert await raw.depth(qname) == 0
    finally:
        await t.close()


async def test_close_deletes_what_is_done_and_releases_the_rest_at_once(
    sqs_url, raw: RawSQS, qname
):
    await make_queue(sqs_url, qname, {"VisibilityTimeout": "60"})
    for i in range(4):
        await raw.send(qname, f"m{i}")
    t = await _subscribed(sqs_url, qname)
    got = await _poll_until(t, 4)
    assert len(got) == 4
    done = [m for m in got if m.value in (b"m0", b"m2")]
    for m in done:
        t.ack(m)
    await t.close()  # no commit: close() flushes the acknowledgements itself
    assert t.released == 2
    # The two unfinished messages are visible again now, not after the 60 s timeout.
    back = await raw.receive(qname, wait=2)
    assert sorted(m["Body"] for m in back) == ["m1", "m3"]
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "2" for m in back)


async def test_a_message_reports_its_receive_count_redrive_limit_and_ids(
    sqs_url, raw: RawSQS, qname
):
    await make_queue(sqs_url, f"{qname}-dlq")
    dlq_arn = await raw.arn(f"{qname}-dlq")
    await make_queue(sqs_url, qname, {"VisibilityTimeout": "1", **redrive(dlq_arn, 5)})
    message_id = await raw.send(qname, "hello")
    t = await _subscribed(sqs_url, qname)
    try:
        (first,) = await _poll_until(t, 1)
    finally:
        await t.close()
    t2 = await _subscribed(sqs_url, qname)
    try:
        (second,) = await _poll_until(t2, 1)
    finally:
        await t2.close()
    assert (first.delivery_count, second.delivery_count) == (1, 2)
    assert first.max_deliveries == 5 and not first.final_delivery
    assert first.message_id == second.message_id == message_id
    assert first.offset != second.offset or first.receipt != second.receipt
    assert first.timestamp_ms > 0 and first.partition == 0 and first.topic == qname


async def test_a_missing_queue_is_a_configuration_error_unless_creation_is_on(sqs_url, qname):
    with pytest.raises(ConfigurationError):
        t = SQSTransport(parse_sqs_url(sqs_url))
        try:
            await t.subscribe([qname], "g", IgnoreRebalance())
        finally:
            await t.close()
    t = SQSTransport(parse_sqs_url(f"{sqs_url}&create_queues=true"))
    try:
        await t.subscribe([f"{qname}.fifo"], "g", IgnoreRebalance())
        assert (await t.clients.queue(f"{qname}.fifo")).fifo
    finally:
        await t.close()


async def test_a_handler_running_three_visibility_timeouts_completes_with_no_second_delivery(
    sqs_url, raw: RawSQS, qname, tmp_path: Path
):
    # Given a queue with a 2 s visibility timeout and two competing workers
    await make_queue(sqs_url, qname, {"VisibilityTimeout": "2"})
    calls: list[tuple[str, int | None]] = []
    app = agentstream.App("slow", broker=sqs_url, store=f"sqlite:///{tmp_path / 'j.db'}")

    @app.agent(source=qname, identity=lambda p: p["id"])
    async def slow(ctx: agentstream.Context, payload: dict) -> None:
        calls.append((ctx.identity, ctx.event.message.delivery_count))
        await asyncio.sleep(6.5)  # an LLM call three times the visibility timeout

    async with AppHarness(app), AppHarness(app) as second:
        # When one event arrives
        await raw.send(qname, '{"id": "e-1"}')
        await second.wait_drained(timeout_s=30)
        # Then it ran once, on its first delivery, and nobody received it again
        assert calls == [("e-1", 1)]
        store = SqliteStore(tmp_path / "j.db")
        await store.open()
        try:
            record = await store.get_event("slow", "e-1")
        finally:
            await store.close()
        assert record is not None and record.state == "completed" and record.deliveries == 1
    assert await raw.depth(qname) == 0


async def test_a_queue_whose_visibility_cannot_be_renewed_in_time_is_refused(sqs_url, qname):
    await make_queue(sqs_url, qname, {"VisibilityTimeout": "0"})
    t = SQSTransport(parse_sqs_url(sqs_url))
    try:
        with pytest.raises(ConfigurationError, match="visibility timeout of 0s"):
            await t.subscribe([qname], "g", IgnoreRebalance())
    finally:
        await t.close()
    t = SQSTransport(parse_sqs_url(f"{sqs_url}&visibility_timeout=5"))
    try:
        await t.subscribe([qname], "g", IgnoreRebalance())  # the URL's timeout overrides
        assert t.assignment() == [(qname, 0)]
    finally:
        await t.close()
