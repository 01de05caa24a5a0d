"""The keyed scheduler: strict order per key, parallel across keys.

Each ordering key has a FIFO queue. At most ``concurrency`` keys run at once; a key runs one
event at a time, so events of a key are processed strictly in arrival order while other keys
proceed. An event asked to run again later (retry backoff, busy claim) stays at the head of its
key's queue, holding that key back without holding a slot: the key sleeps on a timer and other
keys use the slot meanwhile. Keys waiting for a slot are served in arrival order.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Collection

from agentstream.event import Event, TopicPartition
from agentstream.outcomes import DeliveryOutcome, Done, Outcome, RetryLater

log = logging.getLogger("agentstream.scheduler")


class KeyedScheduler:
    """Per-key FIFO queues with bounded concurrency.

    Args:
        handler: Processes one event and says whether it is done.
        on_done: Called with each event once it is done (acknowledge it).
        concurrency: Most keys running at once.
    """

    def __init__(
        self,
        handler: Callable[[Event], Awaitable[Outcome]],
        on_done: Callable[[Event], None],
        *,
        concurrency: int,
    ) -> None:
        self._handler = handler
        self._on_done = on_done
        self.concurrency = concurrency
        self._queues: dict[str, collections.deque[Event]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._sleeping: dict[str, asyncio.TimerHandle] = {}
        self._ready: collections.deque[str] = collections.deque()
        self._buffered = 0
        self._revoked: set[int] = set()
        self._closed = False

    @property
    def buffered(self) -> int:
        """Events queued or running."""
        return self._buffered

    @property
    def in_flight(self) -> int:
        """Events running now."""
        return len(self._running)

    def submit(self, event: Event) -> None:
        """Queue an event behind earlier events of its key."""
        if self._closed:
            return
        queue = self._queues.get(event.key)
        if queue is None:
            queue = self._queues[event.key] = collections.deque()
        queue.append(event)
        self._buffered += 1
        if len(queue) == 1 and event.key not in self._running and event.key not in self._sleeping:
            self._make_ready(event.key)

    def _make_ready(self, key: str) -> None:
        if len(self._running) < self.concurrency and not self._ready:
            self._start(key)
        else:
            self._ready.append(key)

    def _start(self, key: str) -> None:
        event = self._queues[key][0]
        self._running[key] = asyncio.create_task(
            self._run(key, event), name=f"event:{event.identity}"
        )

    def _fill(self) -> None:
        while self._ready and len(self._running) < self.concurrency:
            key = self._ready.popleft()
            if self._queues.get(key) and key not in self._running and key not in self._sleeping:
                self._start(key)

    async def _run(self, key: str, event: Event) -> None:
        outcome: Outcome | None = None
        cancelled = False
        try:
            outcome = await self._handler(event)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:  # a bug in the runtime: keep the event and try later, never lose it
            log.exception("scheduler: handler failed for %s; retrying in 1s", event.identity)
            outcome = RetryLater(1.0, DeliveryOutcome.ERROR)
        self._running.pop(key, None)
        revoked = id(event) in self._revoked
        self._revoked.discard(id(event))
        queue = self._queues.get(key)
        at_head = bool(queue) and queue[0] is event  # type: ignore[index]
        if at_head and (revoked or isinstance(outcome, Done)):
            queue.popleft()  # type: ignore[union-attr]
            self._buffered -= 1
            if isinstance(outcome, Done):
                self._on_done(event)
        elif at_head and isinstance(outcome, RetryLater) and not self._closed:
            loop = asyncio.get_running_loop()
            self._sleeping[key] = loop.call_later(outcome.delay_s, self._wake, key)
        if queue is not None and not queue:
            del self._queues[key]
        elif queue and key not in self._sleeping and not self._closed:
            self._ready.append(key)
        self._fill()
        if cancelled:
            raise asyncio.CancelledError

    def _wake(self, key: str) -> None:
        self._sleeping.pop(key, None)
        if self._queues.get(key) and not self._closed:
            self._make_ready(key)
            self._fill()

    def drop(self, partitions: Collection[TopicPartition]) -> list[asyncio.Task[None]]:
        """Forget queued events of revoked partitions; return the running tasks among them.

        The running tasks are left to the caller, which may let them finish within a deadline
        or cancel them.
        """
        parts = set(partitions)
        running: list[asyncio.Task[None]] = []
        for key in list(self._queues):
            queue = self._queues[key]
            head_running = key in self._running
            kept = collections.deque(
                e for i, e in enumerate(queue) if e.tp not in parts or (i == 0 and head_running)
            )
            self._buffered -= len(queue) - len(kept)
            if head_running and queue[0].tp in parts:
                self._revoked.add(id(queue[0]))
                running.append(self._running[key])
            if kept:
                self._queues[key] = kept
            else:
                del self._queues[key]
                timer = self._sleeping.pop(key, None)
                if timer is not None:
                    timer.cancel()
        return running

    async def close(self, grace_s: float) -> None:
        """Stop: let running events finish for ``grace_s``, then cancel them; drop the rest."""
        self._closed = True
        for timer in self._sleeping.values():
            timer.cancel()
        self._sleeping.clear()
        self._ready.clear()
        tasks = list(self._running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        self._queues.clear()
        self._buffered = 0
