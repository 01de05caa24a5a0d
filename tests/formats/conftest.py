"""One broker fixture over the three transports, with a producer that is not agentstream's.

Kafka records are written with confluent-kafka's own Producer and SQS messages with a plain
aiobotocore client (headers as message attributes); the embedded log has no other producer, so
its transport writes there.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from agentstream.event import OutgoingRecord
from agentstream.transports.embedded import EmbeddedTransport
from tests.conformance.conftest import KAFKA_TEST_SETTINGS
from tests.sqs.conftest import make_queue
from tests.sqs.raw import RawSQS


@dataclass
class Broker:
    """A broker URL for an App, plus a way to create a source and publish raw records."""

    kind: str
    url: str
    _bootstrap: str | None = None
    _raw: RawSQS | None = None

    async def source(self, name: str) -> str:
        """A fresh topic or queue name (created where the broker needs it)."""
        if self.kind == "sqs":
            await make_queue(self.url, name)
        return name

    async def publish(
        self, topic: str, value: bytes, headers: Mapping[str, bytes], key: bytes | None = None
    ) -> None:
        """Publish one record with a producer of the broker's own ecosystem."""
        if self.kind == "kafka":
            producer = Producer({"bootstrap.servers": self._bootstrap})
            producer.produce(topic, value=value, key=key, headers=list(headers.items()))
            assert producer.flush(10) == 0
        elif self.kind == "sqs":
            assert self._raw is not None
            attributes: dict[str, Any] = {
                k: {"DataType": "String", "StringValue": v.decode()} for k, v in headers.items()
            }
            await self._raw.send(topic, value.decode(), MessageAttributes=attributes)
        else:
            transport = EmbeddedTransport(self.url.removeprefix("sqlite:///"))
            await transport.start()
            try:
                await transport.produce([OutgoingRecord(topic, key, value, tuple(headers.items()))])
            finally:
                await transport.close()


@pytest.fixture(params=["embedded", "kafka", "sqs"])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    """Each transport in turn (Kafka on Tansu, SQS on moto, the embedded SQLite log)."""
    kind = request.param
    if kind == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        yield Broker(kind, f"kafka://{bootstrap}?{KAFKA_TEST_SETTINGS}", _bootstrap=bootstrap)
    elif kind == "sqs":
        endpoint = request.getfixturevalue("sqs_endpoint")
        raw = RawSQS(endpoint)
        await raw.open()
        url = f"sqs://test:test@{endpoint.split('://', 1)[1]}?region=us-east-1&wait_time=1"
        yield Broker(kind, url, _raw=raw)
        await raw.close()
    else:
        yield Broker(kind, f"sqlite:///{tmp_path / 'log.db'}")


@pytest.fixture
def name() -> str:
    """A unique name for this test's topics and app."""
    return f"f{uuid.uuid4().hex[:10]}"
