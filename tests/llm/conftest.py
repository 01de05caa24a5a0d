"""Fixtures for the LLM layer: the simulator served over HTTP, and a fast App factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import agentstream
from agentstream.journal.sqlite import SqliteStore
from agentstream.llm.openai_provider import OpenAIProvider
from agentstream.llm.simulator import SimulatorConfig, SimulatorServer

FAST = agentstream.RuntimeConfig(
    session_timeout_s=2.0, heartbeat_s=0.2, commit_interval_s=0.05, shutdown_grace_s=2.0
)


@pytest.fixture
def simulator() -> Iterator[Callable[..., SimulatorServer]]:
    """Start simulator servers on free loopback ports: ``simulator(rpm=..., ...)``."""
    started: list[SimulatorServer] = []

    def start(**config: Any) -> SimulatorServer:
        config.setdefault("latency_ms", 5.0)
        config.setdefault("seed", 7)
        server = SimulatorServer(SimulatorConfig(**config)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def make_app(db_url: str) -> Callable[..., agentstream.App]:
    """An App on a fresh SQLite file talking to a simulator over HTTP."""

    def build(sim: SimulatorServer, **kwargs: Any) -> agentstream.App:
        kwargs.setdefault("config", FAST)
        return agentstream.App(
            "llmtest",
            broker=db_url,
            llm=OpenAIProvider(base_url=sim.url, api_key="sim"),
            **kwargs,
        )

    return build


async def open_store(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    await store.open()
    return store
