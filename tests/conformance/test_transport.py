"""One Transport conformance suite, run against every transport backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from agentstream.event import Message, OutgoingRecord, TopicPartition
from agentstream.transports.base import Transport
from tests.conformance.conftest import TransportEnv


class Listener:
    def __init__(self) -> None:
        self.assigned: list[TopicPartition] = []
        self.revoked: list[TopicPartition] = []

    async def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self.assigned.extend(partitions)

    async def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self.revoked.extend(partitions)


def records(topic: str, n: int, keys: int = 5) -> list[OutgoingRecord]:
    return [
        OutgoingRecord(topic, f"k{i % keys}".encode(), f"v{i}".encode(), (("n", str(i).encode()),))
        for i in range(n)
    ]


async def produce(env: TransportEnv, recs: list[OutgoingRecord]) -> None:
    t = env.make()
    await t.start()
    try:
        await t.produce(recs)
    finally:
        await t.close()


async def consume(t: Transport, want: int, timeout_s: float = 30.0) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got.extend(await t.poll(100, 0.2))
    return got


async def drain_quiet(t: Transport, settle_s: float) -> list[Message]:
    """Poll until nothing has arrived for ``settle_s``."""
    got: list[Message] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < settle_s:
        batch = await t.poll(100, 0.1)
        if batch:
            got.extend(batch)
            quiet_since = time.monotonic()
    return got


async def joined(env: TransportEnv, topic: str, group: str) -> tuple[Transport, Listener]:
    t = env.make()
    listener = Listener()
    await t.start()
    await t.subscribe([topic], group, listener)
    return t, listener


async def round_trip(env: TransportEnv, sent: list[OutgoingRecord], group: str) -> list[Message]:
    """Produce ``sent`` (all to one topic), then consume as many records in a new group."""
    await produce(env, sent)
    t, _ = await joined(env, sent[0].topic, group)
    try:
        return await consume(t, len(sent))
    finally:
        await t.close()


async def test_records_round_trip_with_key_value_and_headers(transport_env):
    topic = await transport_env.new_topic(4)
    sent = records(topic, 40)
    got = await round_trip(transport_env, sent, "g-roundtrip")
    assert sorted((m.key, m.value, m.headers) for m in got) == sorted(
        (r.key, r.value, r.headers) for r in sent
    )
    assert all(m.topic == topic for m in got)


async def test_a_null_value_arrives_as_none_and_an_empty_one_as_empty_bytes(transport_env):
    topic = await transport_env.new_topic(2)
    sent = [
        OutgoingRecord(topic, b"gone", None, (("n", b"0"),)),
        OutgoingRecord(topic, b"blank", b"", (("n", b"1"),)),
        OutgoingRecord(topic, None, None),
    ]
    got = await round_trip(transport_env, sent, "g-tombstones")
    assert sorted((m.header("n") or b"", m.key or b"", m.value) for m in got) == [
        (b"", b"", None),
        (b"0", b"gone", None),
        (b"1", b"blank", b""),
    ]


async def test_records_of_one_key_arrive_in_the_order_produced(transport_env):
    topic = await transport_env.new_topic(4)
    sent = records(topic, 60, keys=3)
    await produce(transport_env, sent)
    t, _ = await joined(transport_env, topic, "g-order")
    try:
        got = await consume(t, len(sent))
    finally:
        await t.close()
    for key in {r.key for r in sent}:
        seen = [int(m.value[1:]) for m in got if m.key == key]
        assert seen == sorted(seen) and len(seen) == 20


async def test_only_unacknowledged_work_comes_back_after_a_restart(transport_env):
    topic = await transport_env.new_topic(2)
    sent = records(topic, 30, keys=2)
    await produce(transport_env, sent)
    t, _ = await joined(transport_env, topic, "g-restart")
    got = await consume(t, len(sent))
    assert len(got) == len(sent)
    unacked = {m.value for i, m in enumerate(got) if i % 7 == 3}
    for m in got:
        if m.value not in unacked:
            t.ack(m)
    await t.commit()
    await t.close()
    lowest_unacked = {}
    for m in got:
        if m.value in unacked:
            lowest_unacked[m.tp] = min(lowest_unacked.get(m.tp, m.offset), m.offset)
    safely_done = {
        m.value
        for m in got
        if m.value not in unacked and m.offset < lowest_unacked.get(m.tp, 1 << 62)
    }
    t2, _ = await joined(transport_env, topic, "g-restart")
    try:
        again = await drain_quiet(t2, transport_env.settle_s + 2.0)
    finally:
        await t2.close()
    values = {m.value for m in again}
    assert unacked <= values
    assert not (safely_done & values)


async def test_pause_stops_delivery_and_resume_restarts_it(transport_env):
    topic = await transport_env.new_topic(2)
    t, _ = await joined(transport_env, topic, "g-pause")
    try:
        await drain_quiet(t, 0.3)
        t.pause()
        await produce(transport_env, records(topic, 10))
        paused = await drain_quiet(t, transport_env.settle_s + 1.0)
        assert paused == []
        t.resume()
        got = await consume(t, 10)
        assert len(got) == 10
    finally:
        await t.close()


async def test_members_of_one_group_share_the_work_and_together_see_everything(transport_env):
    topic = await transport_env.new_topic(6)
    (a, _la), (b, _lb) = await asyncio.gather(
        joined(transport_env, topic, "g-share"), joined(transport_env, topic, "g-share")
    )
    sent = records(topic, 120, keys=12)
    try:
        await produce(transport_env, sent)
        deadline = time.monotonic() + 30
        seen: set[bytes] = set()
        got_a: list[Message] = []
        got_b: list[Message] = []
        while len(seen) < len(sent) and time.monotonic() < deadline:
            ba, bb = await asyncio.gather(a.poll(50, 0.2), b.poll(50, 0.2))
            for t, batch, acc in ((a, ba, got_a), (b, bb, got_b)):
                acc.extend(batch)
                for m in batch:
                    seen.add(m.value)
                    t.ack(m)
            await asyncio.gather(a.commit(), b.commit())
        assert seen == {r.value for r in sent}
        assert got_a and got_b, "both members should have received work"
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_lag_is_zero_once_everything_is_acknowledged_and_committed(transport_env):
    topic = await transport_env.new_topic(3)
    await produce(transport_env, records(topic, 15))
    t, _ = await joined(transport_env, topic, "g-lag")
    try:
        for m in await consume(t, 15):
            t.ack(m)
        await t.commit()
        lag = await t.lag()
        assert lag and all(v in (0, None) for v in lag.values())
    finally:
        await t.close()
