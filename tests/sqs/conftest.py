"""Fixtures for SQS tests: URLs pointing at the moto server, unique queues, a raw client."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from agentstream.transports.base import IgnoreRebalance
from agentstream.transports.sqs import SQSTransport
from agentstream.transports.sqs_config import parse_sqs_url
from tests.sqs.raw import RawSQS


@pytest.fixture
def sqs_url(sqs_endpoint: str) -> str:
    """Base broker URL on the moto server (static dummy credentials, 1 s long polls)."""
    return f"sqs://test:test@{sqs_endpoint.split('://', 1)[1]}?region=us-east-1&wait_time=1"


@pytest.fixture
async def raw(sqs_endpoint: str) -> AsyncIterator[RawSQS]:
    """A plain SQS client for setting queues up and looking at them from outside."""
    client = RawSQS(sqs_endpoint)
    await client.open()
    yield client
    await client.close()


@pytest.fixture
def qname() -> str:
    """A unique queue-name prefix for one test."""
    return f"q{uuid.uuid4().hex[:10]}"


async def make_queue(sqs_url: str, name: str, attributes: dict[str, str] | None = None) -> str:
    """Create a queue through the transport; return its URL."""
    t = SQSTransport(parse_sqs_url(sqs_url))
    try:
        return await t.create_queue(name, attributes)
    finally:
        await t.close()


def redrive(dlq_arn: str, max_receive_count: int) -> dict[str, str]:
    """Queue attributes for a redrive policy."""
    return {
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
        )
    }


async def drain(sqs_url: str, name: str, *, settle_s: float = 1.5, delete: bool = True) -> list:
    """Receive a queue's messages through the transport until it stays quiet for ``settle_s``."""
    import time

    t = SQSTransport(parse_sqs_url(sqs_url))
    await t.subscribe([name], "test-reader", IgnoreRebalance())
    got = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle_s:
            batch = await t.poll(100, 0.2)
            if batch:
                got.extend(batch)
                quiet_since = time.monotonic()
                if delete:
                    for m in batch:
                        t.ack(m)
                    await t.commit()
    finally:
        await t.close()
    return got
