"""Backends under conformance test. A new backend adds one factory here and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from agentstream.journal import Store
from agentstream.journal.postgres import PostgresStore
from agentstream.journal.sqlite import SqliteStore
from agentstream.transports.base import Transport
from agentstream.transports.embedded import EmbeddedTransport
from agentstream.transports.kafka import KafkaTransport
from agentstream.transports.kafka_config import parse_kafka_url
from agentstream.transports.sqs import SQSTransport
from agentstream.transports.sqs_config import parse_sqs_url
from tests.services import postgres_dsn, unavailable


class FakeClock:
    """A wall clock the test moves by hand (leases, backoff, outbox leases)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Namespace:
    """Per-test isolation handed to backend factories (a temp folder and a unique name).

    ``fixture`` looks up a pytest fixture by name, for backends that need a service
    (``sqs_endpoint``, ``kafka_bootstrap``); it is only called by the backends that use it.
    """

    tmp_path: Path
    name: str
    fixture: Callable[[str], Any] | None = None


def _sqlite_store(ns: Namespace, clock: FakeClock) -> Store:
    # Each call is a separate store object on one file, like separate worker processes.
    return SqliteStore(ns.tmp_path / "journal.db", clock=clock)


@pytest.fixture
def postgres_schemas() -> Iterator[list[str]]:
    """Schemas a test creates on the PostgreSQL test server; dropped after the test."""
    try:
        psycopg.connect(postgres_dsn(), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {postgres_dsn()}: {exc}")
    created: list[str] = []
    yield created
    with psycopg.connect(postgres_dsn(), autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _postgres_store(ns: Namespace, clock: FakeClock) -> Store:
    # Each call is a separate store (its own pool) on the test's own schema.
    assert ns.fixture is not None
    schemas: list[str] = ns.fixture("postgres_schemas")
    if ns.name not in schemas:
        schemas.append(ns.name)
    return PostgresStore(postgres_dsn(), schema=ns.name, clock=clock)


STORE_BACKENDS: dict[str, Callable[[Namespace, FakeClock], Store]] = {
    "postgres": _postgres_store,
    "sqlite": _sqlite_store,
}


@pytest.fixture(params=sorted(STORE_BACKENDS))
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[FakeClock], Awaitable[Store]]]:
    """Open stores of the parametrized backend; all made in one test share one database."""
    ns = Namespace(tmp_path, f"t{uuid.uuid4().hex[:12]}", request.getfixturevalue)
    opened: list[Store] = []

    async def factory(clock: FakeClock) -> Store:
        store = STORE_BACKENDS[request.param](ns, clock)
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


class TransportEnv:
    """How the transport suite gets fresh topics and transports of one backend.

    Attributes:
        name: Backend name.
        is_log: Offsets are positions in a partitioned log (Kafka, embedded); false for queues.
        settle_s: How long polling must stay empty before "nothing more is coming" is believed.
    """

    name = "base"
    is_log = True
    settle_s = 0.5

    async def new_topic(self, partitions: int) -> str:
        """Create a uniquely named topic (or queue)."""
        raise NotImplementedError

    def make(self) -> Transport:
        """A new transport instance (a new consumer/producer)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release anything the environment holds."""


class EmbeddedEnv(TransportEnv):
    name = "embedded"

    def __init__(self, ns: Namespace) -> None:
        self.path = ns.tmp_path / "log.db"

    async def new_topic(self, partitions: int) -> str:
        topic = f"topic-{uuid.uuid4().hex[:8]}"
        t = EmbeddedTransport(self.path)
        await t.start()
        await t.create_topic(topic, partitions)
        await t.close()
        return topic

    def make(self) -> Transport:
        return EmbeddedTransport(self.path, session_timeout_s=2.0, heartbeat_s=0.2)


class SqsEnv(TransportEnv):
    """Standard SQS queues on the moto server.

    Standard, not FIFO: the suite reads many records of one key without acknowledging them,
    and a FIFO queue withholds a group's later messages while earlier ones are in flight.
    """

    name = "sqs"
    is_log = False
    settle_s = 1.0

    def __init__(self, ns: Namespace) -> None:
        assert ns.fixture is not None
        endpoint: str = ns.fixture("sqs_endpoint")
        self.url = f"sqs://test:test@{endpoint.split('://', 1)[1]}?region=us-east-1&wait_time=1"
        self.prefix = ns.name

    async def new_topic(self, partitions: int) -> str:
        name = f"{self.prefix}-{uuid.uuid4().hex[:8]}"
        t = SQSTransport(parse_sqs_url(self.url))
        try:
            await t.create_queue(name)
        finally:
            await t.close()
        return name

    def make(self) -> Transport:
        return SQSTransport(parse_sqs_url(self.url))


# Tansu makes a group join wait about half of session.timeout.ms: keep it short in tests.
KAFKA_TEST_SETTINGS = "session.timeout.ms=6000&heartbeat.interval.ms=1000&fetch.wait.max.ms=10"


class KafkaEnv(TransportEnv):
    """Topics on the Tansu broker; each transport is a new consumer-group member."""

    name = "kafka"
    # A member joining a group waits for the rebalance (~3 s on Tansu with these settings).
    settle_s = 5.0

    def __init__(self, ns: Namespace) -> None:
        assert ns.fixture is not None
        bootstrap: str = ns.fixture("kafka_bootstrap")
        self.url = f"kafka://{bootstrap}?{KAFKA_TEST_SETTINGS}"
        self.prefix = ns.name

    async def new_topic(self, partitions: int) -> str:
        name = f"{self.prefix}-{uuid.uuid4().hex[:8]}"
        t = self.make()
        try:
            await t.create_topic(name, partitions)
        finally:
            await t.close()
        return name

    def make(self) -> KafkaTransport:
        return KafkaTransport(parse_kafka_url(self.url))


TRANSPORT_BACKENDS: dict[str, Callable[[Namespace], TransportEnv]] = {
    "embedded": EmbeddedEnv,
    "kafka": KafkaEnv,
    "sqs": SqsEnv,
}


@pytest.fixture(params=sorted(TRANSPORT_BACKENDS))
async def transport_env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[TransportEnv]:
    """A transport environment of the parametrized backend."""
    env = TRANSPORT_BACKENDS[request.param](
        Namespace(tmp_path, f"t{uuid.uuid4().hex[:12]}", request.getfixturevalue)
    )
    yield env
    await env.close()
