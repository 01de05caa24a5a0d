"""Test support shipped with the package: run an App in-process and wait for it to drain.

Everything here drives the real runtime against real backends (the embedded log and SQLite
journal by default); nothing is mocked. ``run_agent`` delivers one payload to one agent through
the real executor (no transport), for unit tests of an agent; ``AppHarness`` runs whole apps::

    async with AppHarness(app) as h:
        await h.produce("tickets", [ticket.model_dump_json() for ticket in tickets])
        await h.wait_drained()
        outputs = await h.read("triage")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from agentstream.app import App
from agentstream.backends import Backends, scheme_of
from agentstream.codec import encode_value
from agentstream.event import Message, OutgoingRecord, TopicPartition, headers_from_mapping
from agentstream.formats.base import bind_to_broker
from agentstream.journal.records import StepRecord
from agentstream.runtime.executor import Executor
from agentstream.runtime.intake import interpret
from agentstream.runtime.keeper import LeaseKeeper
from agentstream.runtime.worker import AgentWorker
from agentstream.sqlite_db import sqlite_path
from agentstream.transports.embedded import read_topic

__all__ = ["AgentRun", "AppHarness", "run_agent"]


class AppHarness:
    """Runs an App's agents in the current event loop.

    Args:
        app: The application.
        agents: Agents to run (default: all).
    """

    def __init__(self, app: App, *, agents: Sequence[str] | None = None) -> None:
        self.app = app
        self.agents = agents
        self.workers: list[AgentWorker] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backends = Backends(app.broker_url, app.store_url, app.config)

    async def __aenter__(self) -> AppHarness:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the workers and wait until they own partitions."""
        self._task = asyncio.create_task(
            self.app.run(
                agents=self.agents,
                stop=self._stop,
                install_signal_handlers=False,
                on_started=self.workers.extend,
            )
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._task.done():
                await self._task
            if self.workers and all(w.transport.assignment() for w in self.workers):
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("workers did not get partitions within 30s")

    async def stop(self) -> None:
        """Stop the workers gracefully."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def produce(
        self,
        topic: str,
        values: Iterable[Any],
        *,
        key: Any = None,
        headers: Any = None,
    ) -> int:
        """Publish values (bytes, text, JSON-able or pydantic) to a topic.

        Args:
            topic: Destination.
            values: Record values.
            key: A function of each value giving its key, or None.
            headers: A function of each value giving a header mapping, or None.
        """
        records = [
            OutgoingRecord(
                topic,
                None if key is None else str(key(v)).encode(),
                encode_value(v),
                headers_from_mapping(None if headers is None else headers(v)),
            )
            for v in values
        ]
        transport = self._backends.transport()
        await transport.start()
        try:
            await transport.produce(records)
        finally:
            await transport.close()
        return len(records)

    async def wait_drained(self, timeout_s: float = 60.0) -> None:
        """Wait until every delivered event is done, committed and its outputs published."""
        deadline = time.monotonic() + timeout_s
        store = self._backends.store()
        await store.open()
        try:
            while True:
                if self._task is not None and self._task.done():
                    await self._task
                # Cheapest first: the lag queries run on the consumer thread and the outbox
                # count is a journal query, so a wait during a benchmark asks for them only
                # once the workers are idle (they took about a tenth of the journal's time).
                late = time.monotonic() > deadline
                idle = all(w.scheduler.buffered == 0 for w in self.workers)
                lags: list[dict[TopicPartition, int | None]] = []
                pending: int | None = None
                if idle or late:
                    lags = [await w.transport.lag() for w in self.workers]
                    caught_up = all(all(v == 0 for v in lag.values()) for lag in lags)
                    if caught_up or late:
                        pending = (await store.counts())["outbox_pending"]
                    if idle and caught_up and pending == 0:
                        return
                if late:
                    raise TimeoutError(
                        f"not drained after {timeout_s}s: buffered="
                        f"{[w.scheduler.buffered for w in self.workers]} lag={lags} "
                        f"outbox_pending={pending}"
                    )
                await asyncio.sleep(0.05)
        finally:
            await store.close()

    def read(self, topic: str) -> list[Message]:
        """Every record of a topic on the embedded log, in partition and offset order."""
        if scheme_of(self.app.broker_url) != "sqlite":
            raise NotImplementedError("AppHarness.read supports the embedded log only")
        return read_topic(sqlite_path(self.app.broker_url), topic)


@dataclass(frozen=True)
class AgentRun:
    """What one delivery of one event did (see :func:`run_agent`)."""

    outcome: str
    state: str | None
    result: Any
    steps: list[StepRecord]
    dead_letter: dict[str, Any] | None


async def run_agent(
    app: App,
    agent: str,
    payload: Any,
    *,
    key: str | bytes | None = None,
    headers: dict[str, str | bytes] | None = None,
    offset: int = 0,
) -> AgentRun:
    """Deliver one payload to one agent through the real executor, without a transport.

    The event goes through the same intake, claim, journaled context and completion as in a
    running worker, against the app's journal; call it twice with the same payload to see a
    duplicate answered from the journal. Useful for unit tests of an agent.
    """
    spec = app.select([agent])[0]
    message = Message(
        topic=spec.source,
        partition=0,
        offset=offset,
        key=key.encode() if isinstance(key, str) else key,
        value=encode_value(payload),
        headers=headers_from_mapping(headers),
    )
    bind_to_broker((spec.decoder, spec.encoder), app.broker_url)
    event = interpret(spec, message)
    store = app.backends().store()
    await store.open()
    try:
        executor = Executor(
            spec,
            store,
            app.provider(),
            app.middleware,
            owner="run_agent",
            group=app.group_of(spec),
            lease_s=app.config.lease_s,
        )
        # Renewed as in a worker, from its own thread: a run longer than the lease (a slow
        # framework agent on a loaded machine) keeps its claim.
        keeper = LeaseKeeper(
            spec.name,
            executor.leases,
            lambda: app.backends().store(),
            asyncio.get_running_loop(),
            on_stall=lambda _seconds: None,
            stall_threshold_s=app.config.loop_stall_s,
        )
        await asyncio.to_thread(keeper.start)
        try:
            outcome = await executor.process(event)
        finally:
            await asyncio.to_thread(keeper.stop)
        record = await store.get_event(spec.name, event.identity)
        letters = [
            d
            for d in await store.dead_letters(agent=spec.name, limit=1000)
            if d.event_id == event.identity
        ]
        return AgentRun(
            outcome=outcome.outcome,
            state=None if record is None else str(record.state),
            result=None if record is None else record.result,
            steps=await store.steps(spec.name, event.identity),
            dead_letter=letters[0].envelope if letters else None,
        )
    finally:
        await store.close()
