"""Fixtures for Kafka tests: broker URLs on the Tansu broker, unique names, a raw topic reader."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaPartition

from agentstream.event import Message
from agentstream.transports.kafka import to_message
from tests.conformance.conftest import KAFKA_TEST_SETTINGS


@pytest.fixture
def kafka_url(kafka_bootstrap: str) -> str:
    """A broker URL with the short group timings Tansu needs (see docs/kafka.md)."""
    return f"kafka://{kafka_bootstrap}?{KAFKA_TEST_SETTINGS}"


@pytest.fixture
def name() -> str:
    """A unique prefix for this test's topics and app (Tansu keeps topics for the session)."""
    return f"k{uuid.uuid4().hex[:10]}"


def read_topic(bootstrap: str, topic: str, want: int, timeout_s: float = 30.0) -> list[Message]:
    """Every record of a topic, read from outside with a group-less consumer.

    Reads until ``want`` records arrived and the topic stayed quiet for a second (a duplicate
    would show up then); the broker's high watermark is not trusted (Tansu).
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([KafkaPartition(topic, p, 0) for p in meta.partitions])
        got: list[Message] = []
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = [m for m in consumer.consume(500, 0.2) if m.error() is None]
            got.extend(to_message(m) for m in batch)
            if batch:
                quiet_since = time.monotonic()
            elif len(got) >= want and time.monotonic() - quiet_since > 1.0:
                break
        return got
    finally:
        consumer.close()
