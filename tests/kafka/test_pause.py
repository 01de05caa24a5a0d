"""Pausing the Kafka transport: a short pause keeps librdkafka's prefetch, a long one stops it.

librdkafka's own pause throws the prefetched messages away and fetches again only at its broker
thread's next wakeup (up to a second), so a worker that pauses on a full buffer several times a
second sat idle after each resume (see the notes of ``agentstream.transports.kafka``).
"""

from __future__ import annotations

import asyncio
import time

from agentstream.event import Message, OutgoingRecord
from agentstream.transports.base import IgnoreRebalance
from agentstream.transports.kafka import KafkaTransport
from agentstream.transports.kafka_config import parse_kafka_url

RECORDS = 300


async def started(
    kafka_url: str, topic: str, **kwargs: float
) -> tuple[KafkaTransport, list[Message]]:
    """A transport on ``topic`` holding ``RECORDS`` records, and the first batch it delivered."""
    t = KafkaTransport(parse_kafka_url(kafka_url), **kwargs)
    await t.create_topic(topic, 2)
    await t.produce(
        [OutgoingRecord(topic, f"k{i % 7}".encode(), f"v{i}".encode()) for i in range(RECORDS)]
    )
    await t.subscribe([topic], f"g-{topic}", IgnoreRebalance())
    deadline = time.monotonic() + 30
    while not (first := await t.poll(10, 0.2)):
        assert time.monotonic() < deadline, "nothing delivered"
    return t, first


async def drain(t: KafkaTransport, seen: list[Message]) -> None:
    deadline = time.monotonic() + 30
    while len(seen) < RECORDS:
        assert time.monotonic() < deadline, f"only {len(seen)} of {RECORDS} delivered"
        seen.extend(await t.poll(500, 0.2))


async def test_the_first_poll_after_a_short_pause_returns_prefetched_messages_at_once(
    kafka_url, name
):
    # Given a transport that has prefetched a backlog
    t, _ = await started(kafka_url, f"{name}-short")
    try:
        # When it is paused for a few polls and resumed
        t.pause()
        for _ in range(3):
            assert await t.poll(500, 0.05) == []
        t.resume()
        # Then the very next poll hands messages out without waiting for a new fetch
        assert await t.poll(500, 0.001)
        assert not t.fetch_stopped
    finally:
        await t.close()


async def test_a_long_pause_stops_the_fetcher_and_loses_or_repeats_nothing(kafka_url, name):
    # Given a transport whose pauses stop librdkafka's fetcher after 0.3 s
    t, seen = await started(kafka_url, f"{name}-long", fetch_pause_after_s=0.3)
    try:
        # When it stays paused past that
        t.pause()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert await t.poll(500, 0.05) == []
            await asyncio.sleep(0.02)
        # Then the fetcher is stopped
        assert t.fetch_stopped
        t.resume()
        # And after the resume every record comes out exactly once
        await drain(t, seen)
        values = [m.value for m in seen]
        assert len(values) == len(set(values))
    finally:
        await t.close()
