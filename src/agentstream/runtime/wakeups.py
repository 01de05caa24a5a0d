"""The wake-up loop: resumes waiting events whose signal arrived or whose timer is due.

A waiting event is a journal row, nothing more (see :mod:`agentstream.journal.waits`). Every
worker of the agent asks the journal every ``wake_poll_s`` for due rows (and at once when an
in-process :meth:`agentstream.App.signal` arrives) and queues them on the scheduler like
fresh deliveries, marked ``woken``: they were acknowledged when they suspended, so they are not
acknowledged again, and they are never parked (they came first). The claim decides who runs
one when several workers ask at once; an event this worker already queued is not asked for
again until it is done. Rows whose woken claim lapsed (a worker died after waking it) come back
in the same query, so a wake-up survives crashes.

A round takes at most ``wake_batch`` rows and never more than the scheduler has room for, so
ten thousand timers firing at once are resumed in bounded batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from agentstream.agent import AgentSpec
from agentstream.config import RuntimeConfig
from agentstream.event import Event, TopicPartition
from agentstream.journal.outage import OutageLog, is_journal_outage
from agentstream.journal.waits import WaitJournal
from agentstream.runtime.intake import interpret
from agentstream.runtime.scheduler import KeyedScheduler

log = logging.getLogger("agentstream.wakeups")


class WakeUps:
    """Resumes one agent's due waiting events on this worker.

    Args:
        spec: The agent.
        store: The journal.
        scheduler: The worker's scheduler.
        config: Runtime settings (``wake_poll_s``, ``wake_batch``, ``max_buffered``).
    """

    def __init__(
        self,
        spec: AgentSpec,
        store: WaitJournal,
        scheduler: KeyedScheduler,
        config: RuntimeConfig,
    ) -> None:
        self.spec = spec
        self.store = store
        self.scheduler = scheduler
        self.config = config
        self.resumed = 0
        self.waiting: int | None = None
        """Events of the agent waiting in the journal, counted every ``lag_interval_s``."""
        self._queued: dict[str, TopicPartition] = {}
        self._poke = asyncio.Event()

    def poke(self) -> None:
        """Look for due events now (a signal arrived in this process)."""
        self._poke.set()

    def done(self, event: Event) -> None:
        """A woken event finished its delivery (completed, suspended again or dead)."""
        self._queued.pop(event.identity, None)

    def forget(self, partitions: set[TopicPartition]) -> None:
        """The scheduler dropped its queued events of revoked partitions."""
        for identity, tp in list(self._queued.items()):
            if tp in partitions:
                del self._queued[identity]

    async def run(self) -> None:
        """Resume due events until cancelled (and count the waiting ones now and then)."""
        next_count = 0.0
        outage = OutageLog(f"agent {self.spec.name}: resuming waiting events", log)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.config.wake_poll_s)
            self._poke.clear()
            try:
                await self.resume_due()
                if time.monotonic() >= next_count:
                    next_count = time.monotonic() + self.config.lag_interval_s
                    self.waiting = await self.store.waiting_count(self.spec.name)
            except Exception as exc:
                if is_journal_outage(exc):
                    outage.failed(exc)
                else:
                    log.exception("agent %s: resuming waiting events failed", self.spec.name)
            else:
                outage.ok()

    async def resume_due(self) -> int:
        """Queue due waiting events this worker has room for; return how many."""
        room = min(self.config.wake_batch, self.config.max_buffered - self.scheduler.buffered)
        if room <= 0:
            return 0
        rows = await self.store.due_waits(self.spec.name, limit=room + len(self._queued))
        queued = 0
        for row in rows:
            if queued >= room:
                break
            if row.event_id in self._queued or row.message is None:
                continue
            event = interpret(self.spec, row.message)
            event.identity = row.event_id
            event.key = row.key if row.key is not None else event.key
            event.woken = True
            self._queued[row.event_id] = event.tp
            self.scheduler.submit(event)
            queued += 1
        if queued:
            self.resumed += queued
            log.debug("agent %s: resuming %d waiting event(s)", self.spec.name, queued)
        return queued
