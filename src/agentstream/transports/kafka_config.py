"""``kafka://`` URLs and the librdkafka settings of consumers, producers and admin clients.

``kafka://host:9092[,host2:9092][?setting=value&...]``: the hosts are ``bootstrap.servers``;
every query parameter is a librdkafka setting passed through untouched (SASL, TLS, timeouts),
so the same code runs against Apache Kafka, Redpanda, MSK or Confluent Cloud::

    kafka://b1:9092,b2:9092?security.protocol=SASL_SSL&sasl.mechanisms=PLAIN
        &sasl.username=KEY&sasl.password=SECRET

A setting prefixed ``consumer.``, ``producer.`` or ``admin.`` applies to that client only;
well-known consumer-only and producer-only settings are routed without a prefix (so librdkafka
does not warn about settings that do not apply). Settings prefixed ``agentstream.`` belong to
this transport, not to librdkafka:

* ``agentstream.partitions``: partitions of topics the transport creates (default: the
  runtime's ``partitions``);
* ``agentstream.replication_factor``: their replication factor (default: the broker's);
* ``agentstream.create_topics``: create missing topics on subscribe and produce (default true);
* ``agentstream.fetch_pause_after_s``: how long a pause only holds messages back before it
  stops librdkafka's fetcher (default 5; see :mod:`agentstream.transports.kafka`);
* ``agentstream.connect_timeout``: seconds the transport waits for the brokers at start before
  it fails with one line naming the cause (default 5).

Settings prefixed ``schema.registry.`` name the Confluent Schema Registry of the cluster
(``schema.registry.url``, ``schema.registry.basic.auth.user.info``...); they are not
librdkafka's, and are read by :mod:`agentstream.formats.schema_registry`.

The transport's own defaults (cooperative-sticky assignment, manual commits, idempotent
producer, reading a new group from the earliest offset) can be overridden the same way, except
the ones its correctness depends on: ``enable.auto.commit`` and ``enable.auto.offset.store``
stay false.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from agentstream.failures import ConfigurationError
from agentstream.transports.kafka_logs import FoldedLog

_CONSUMER_ONLY = frozenset(
    {
        "auto.offset.reset",
        "fetch.max.bytes",
        "fetch.min.bytes",
        "fetch.wait.max.ms",
        "group.instance.id",
        "group.protocol",
        "group.remote.assignor",
        "heartbeat.interval.ms",
        "isolation.level",
        "max.partition.fetch.bytes",
        "max.poll.interval.ms",
        "partition.assignment.strategy",
        "queued.max.messages.kbytes",
        "queued.min.messages",
        "session.timeout.ms",
    }
)
_PRODUCER_ONLY = frozenset(
    {
        "acks",
        "batch.num.messages",
        "batch.size",
        "compression.codec",
        "compression.type",
        "delivery.timeout.ms",
        "enable.idempotence",
        "linger.ms",
        "message.timeout.ms",
        "partitioner",
        "queue.buffering.max.kbytes",
        "queue.buffering.max.messages",
        "queue.buffering.max.ms",
        "request.required.acks",
        "retries",
    }
)
_FORCED_CONSUMER = {"enable.auto.commit": False, "enable.auto.offset.store": False}


@dataclass(frozen=True)
class KafkaSettings:
    """A parsed ``kafka://`` URL.

    Attributes:
        bootstrap: ``host:port[,host:port...]``.
        common: librdkafka settings for every client.
        consumer: Consumer-only settings.
        producer: Producer-only settings.
        admin: Admin-client-only settings.
        partitions: Partitions of topics this transport creates (None: the runtime default).
        replication_factor: Replication of created topics (-1: the broker's default).
        create_topics: Create missing topics on subscribe and produce.
        fetch_pause_after_s: How long a pause keeps librdkafka fetching (holding messages
            back) before it stops the fetcher.
    """

    bootstrap: str
    common: dict[str, str] = field(default_factory=dict)
    consumer: dict[str, str] = field(default_factory=dict)
    producer: dict[str, str] = field(default_factory=dict)
    admin: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None
    replication_factor: int = -1
    create_topics: bool = True
    fetch_pause_after_s: float = 5.0
    connect_timeout_s: float = 5.0
    log: FoldedLog = field(default_factory=FoldedLog, compare=False, repr=False)

    def client_id(self) -> str:
        """A client id naming this host and process (visible in broker logs and group tools)."""
        return f"agentstream-{socket.gethostname()}-{os.getpid()}"

    def consumer_config(self, group: str) -> dict[str, Any]:
        """Settings of a group consumer: manual commits, cooperative-sticky assignment."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "client.id": self.client_id(),
            "group.id": group,
            "partition.assignment.strategy": "cooperative-sticky",
            "auto.offset.reset": "earliest",
            "logger": self.log,
            **self.common,
            **self.consumer,
        }
        config.update(_FORCED_CONSUMER)
        return config

    def producer_config(self) -> dict[str, Any]:
        """Settings of the idempotent producer."""
        return {
            "bootstrap.servers": self.bootstrap,
            "client.id": self.client_id(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Give up on a record well inside the outbox relay's lease (30 s by default), so a
            # slow broker makes the relay retry its rows rather than another relay re-claim and
            # publish them while these are still in flight (librdkafka's default is 300 s).
            "message.timeout.ms": 20_000,
            # Java clients' partitioner: a key lands where other Kafka clients put it.
            "partitioner": "murmur2_random",
            "logger": self.log,
            **self.common,
            **self.producer,
        }

    def admin_config(self) -> dict[str, Any]:
        """Settings of the admin client (topic creation, metadata)."""
        return {
            "bootstrap.servers": self.bootstrap,
            "logger": self.log,
            "error_cb": self.log.on_error,
            **self.common,
            **self.admin,
        }


def _flag(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name}={value!r}: expected true or false")


def parse_kafka_url(url: str) -> KafkaSettings:
    """Parse ``kafka://host:port[,host:port...][?setting=value...]``.

    Raises:
        ConfigurationError: Not a kafka:// URL, no hosts, or an invalid ``agentstream.`` value.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "kafka":
        raise ConfigurationError(f"{url!r} is not a kafka:// URL")
    hosts, _, query = rest.partition("?")
    hosts = unquote(hosts.strip("/"))
    if not hosts or any(not h.strip() for h in hosts.split(",")):
        raise ConfigurationError(f"{url!r}: no broker host (kafka://host:9092[,host2:9092])")
    common: dict[str, str] = {}
    scoped: dict[str, dict[str, str]] = {"consumer": {}, "producer": {}, "admin": {}}
    partitions: int | None = None
    replication = -1
    create = True
    fetch_pause_after_s = 5.0
    connect_timeout = 5.0
    for name, value in parse_qsl(query, keep_blank_values=True):
        prefix, dot, setting = name.partition(".")
        if dot and prefix in scoped:
            scoped[prefix][setting] = value
        elif name == "agentstream.partitions":
            partitions = _positive(name, value)
        elif name == "agentstream.replication_factor":
            replication = int(value)
        elif name == "agentstream.create_topics":
            create = _flag(name, value)
        elif name == "agentstream.fetch_pause_after_s":
            fetch_pause_after_s = _seconds(name, value)
        elif name == "agentstream.connect_timeout":
            connect_timeout = _seconds(name, value)
        elif prefix == "agentstream":
            raise ConfigurationError(f"{url!r}: unknown setting {name!r}")
        elif name.startswith("schema.registry."):
            continue  # the Schema Registry client's (agentstream.formats.schema_registry)
        elif name in _CONSUMER_ONLY:
            scoped["consumer"][name] = value
        elif name in _PRODUCER_ONLY:
            scoped["producer"][name] = value
        else:
            common[name] = value
    return KafkaSettings(
        bootstrap=",".join(h.strip() for h in hosts.split(",")),
        common=common,
        consumer=scoped["consumer"],
        producer=scoped["producer"],
        admin=scoped["admin"],
        partitions=partitions,
        replication_factor=replication,
        create_topics=create,
        fetch_pause_after_s=fetch_pause_after_s,
        connect_timeout_s=connect_timeout,
    )


def _positive(name: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigurationError(f"{name}={value!r}: expected a positive integer")
    return n


def _seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ConfigurationError(f"{name}={value!r}: expected seconds (a number >= 0)")
    return seconds
