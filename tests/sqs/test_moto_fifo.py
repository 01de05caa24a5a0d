"""The test server used for crash tests redelivers FIFO groups the way AWS does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.sqs.moto_fifo import fifo_moto_server
from tests.sqs.raw import RawSQS


@pytest.fixture(scope="module")
def fifo_endpoint() -> Iterator[str]:
    with fifo_moto_server() as endpoint:
        yield endpoint


async def test_a_fifo_group_comes_back_in_order_after_its_visibility_lapses(fifo_endpoint):
    raw = RawSQS(fifo_endpoint)
    await raw.open()
    try:
        name = f"q{uuid.uuid4().hex[:8]}.fifo"
        await raw.sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})
        for i in range(3):
            await raw.send(name, f"m{i}", MessageGroupId="g", MessageDeduplicationId=f"d{i}")
        await raw.send(name, "other", MessageGroupId="h", MessageDeduplicationId="o")
        first = await raw.receive(name, visibility=1)
        assert [m["Body"] for m in first] == ["m0", "m1", "m2", "other"]
        assert await raw.receive(name) == []  # both groups are in flight
        await asyncio.sleep(1.3)  # the consumer died: every message is visible again
        again = await raw.receive(name, max_messages=2)
        assert [m["Body"] for m in again] == ["m0", "m1"]
        # m2 waits behind its in-flight group mates; the other group is free
        assert [m["Body"] for m in await raw.receive(name)] == ["other"]
    finally:
        await raw.close()
