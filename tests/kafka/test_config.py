"""kafka:// URLs: hosts, librdkafka passthrough, client scoping, and missing topics."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agentstream.event import OutgoingRecord
from agentstream.failures import ConfigurationError
from agentstream.transports.kafka import KafkaTransport
from agentstream.transports.kafka_config import parse_kafka_url
from agentstream.transports.kafka_produce import KafkaTopicError


def test_hosts_and_librdkafka_settings_pass_through_to_the_right_clients():
    s = parse_kafka_url(
        "kafka://b1:9092,b2:9093?security.protocol=SASL_SSL&sasl.mechanisms=PLAIN"
        "&sasl.username=key&sasl.password=p%40ss&session.timeout.ms=45000&linger.ms=20"
        "&consumer.client.rack=az1&agentstream.partitions=12"
    )
    consumer = s.consumer_config("app.agent")
    producer = s.producer_config()
    assert consumer["bootstrap.servers"] == producer["bootstrap.servers"] == "b1:9092,b2:9093"
    for config in (consumer, producer, s.admin_config()):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.password"] == "p@ss"
    assert consumer["session.timeout.ms"] == "45000" and "session.timeout.ms" not in producer
    assert producer["linger.ms"] == "20" and "linger.ms" not in consumer
    assert consumer["client.rack"] == "az1" and "client.rack" not in producer
    assert consumer["group.id"] == "app.agent"
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    assert producer["enable.idempotence"] is True
    assert s.partitions == 12
    assert s.fetch_pause_after_s == 5.0
    assert (
        parse_kafka_url("kafka://b:9092?agentstream.fetch_pause_after_s=0.5").fetch_pause_after_s
        == 0.5
    )


def test_manual_commits_cannot_be_turned_off():
    s = parse_kafka_url("kafka://b:9092?enable.auto.commit=true&enable.auto.offset.store=true")
    consumer = s.consumer_config("g")
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False


@pytest.mark.parametrize(
    "url",
    ["kafka://", "kafka://b:9092,", "sqs://x", "kafka://b:9092?agentstream.nope=1",
     "kafka://b:9092?agentstream.partitions=0", "kafka://b:9092?agentstream.create_topics=maybe",
     "kafka://b:9092?agentstream.fetch_pause_after_s=-1"],
)  # fmt: skip
def test_bad_urls_are_refused(url):
    with pytest.raises(ConfigurationError):
        parse_kafka_url(url)


async def test_producing_to_a_missing_topic_fails_clearly_when_creation_is_off(kafka_url, name):
    t = KafkaTransport(parse_kafka_url(f"{kafka_url}&agentstream.create_topics=false"))
    await t.start()
    try:
        with pytest.raises(KafkaTopicError, match="does not exist"):
            await t.produce([OutgoingRecord(f"{name}-missing", None, b"x")])
    finally:
        await t.close()


def test_the_produce_command_reports_a_missing_topic_and_exits(kafka_url, name, tmp_path):
    lines = tmp_path / "one.jsonl"
    lines.write_text('{"a": 1}\n')
    url = f"{kafka_url}&agentstream.create_topics=false"
    out = subprocess.run(
        [sys.executable, "-m", "agentstream", "produce", f"{name}-nope", str(lines), "--broker", url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "does not exist" in out.stderr and "Traceback" not in out.stderr
