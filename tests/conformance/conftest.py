"""Backends under conformance test. A new backend adds one factory here and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentstream.journal.base import Store
from agentstream.journal.sqlite import SqliteStore
from agentstream.transports.base import Transport
from agentstream.transports.embedded import EmbeddedTransport


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
    """Per-test isolation handed to backend factories (a temp folder and a unique name)."""

    tmp_path: Path
    name: str


def _sqlite_store(ns: Namespace, clock: FakeClock) -> Store:
    # Each call is a separate store object on one file, like separate worker processes.
    return SqliteStore(ns.tmp_path / "journal.db", clock=clock)


STORE_BACKENDS: dict[str, Callable[[Namespace, FakeClock], Store]] = {
    "sqlite": _sqlite_store,
}


@pytest.fixture(params=sorted(STORE_BACKENDS))
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[FakeClock], Awaitable[Store]]]:
    """Open stores of the parametrized backend; all made in one test share one database."""
    ns = Namespace(tmp_path, f"t{uuid.uuid4().hex[:12]}")
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


TRANSPORT_BACKENDS: dict[str, Callable[[Namespace], TransportEnv]] = {
    "embedded": EmbeddedEnv,
}


@pytest.fixture(params=sorted(TRANSPORT_BACKENDS))
async def transport_env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[TransportEnv]:
    """A transport environment of the parametrized backend."""
    env = TRANSPORT_BACKENDS[request.param](Namespace(tmp_path, f"t{uuid.uuid4().hex[:12]}"))
    yield env
    await env.close()
