"""The Kafka producer reports exactly which records of a batch the broker took."""

from __future__ import annotations

import pytest

from agentstream.event import OutgoingRecord
from agentstream.transports.kafka import KafkaTransport, parse_kafka_url
from agentstream.transports.kafka_produce import KafkaDeliveryError
from tests.kafka.conftest import read_topic


async def test_an_oversized_record_is_refused_with_what_is_behind_it_on_its_key(
    kafka_url, kafka_bootstrap, name
):
    # Given a batch whose middle record is over the producer's 1 MB message limit
    topic = f"{name}-out"
    transport = KafkaTransport(parse_kafka_url(kafka_url), partitions=1)
    await transport.start()
    try:
        await transport.create_topic(topic, 1)
        records = [
            OutgoingRecord(topic, b"k", b"small-0"),
            OutgoingRecord(topic, b"k", b"x" * 2_000_000),
            OutgoingRecord(topic, b"k", b"small-2"),
            OutgoingRecord(topic, b"other", b"small-3"),
        ]
        # When it is produced
        with pytest.raises(KafkaDeliveryError) as refused:
            await transport.produce(records)
        # Then the error names what the broker acknowledged: the record before it and the
        # other key's record, not the one behind it on its key (which must not overtake it)
        assert refused.value.acknowledged == frozenset({0, 3})
        got = read_topic(kafka_bootstrap, topic, want=2, timeout_s=20)
        assert sorted(m.value for m in got) == [b"small-0", b"small-3"]
        # and the transport keeps producing afterwards
        await transport.produce([OutgoingRecord(topic, b"k", b"small-4")])
    finally:
        await transport.close()
