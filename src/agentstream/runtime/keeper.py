"""The lease keeper: renews a worker's claims from its own thread, with its own journal.

User code cannot starve it: a synchronous handler blocking the event loop, an async one burning
CPU on it, or a thread pool full of slow effects leave this thread (and its own journal
connection) untouched, so a claim is only lost when the whole process stops or the journal is
unreachable. The keeper also watches the event loop: a beat scheduled on the loop that does not
run within ``stall_threshold_s`` is a loop stall, logged when it starts and reported (with its
length) through ``on_stall`` when it ends.

Renewal, every ``lease_s / 3``:

1. renew every current claim in one journal call;
2. claims the journal no longer grants are marked lost in the :class:`LeaseBook`: the handler
   stops before its next journaled step, and an async call in flight is cancelled;
3. a failed renewal is retried after ``retry_s``, not after a whole period, so one journal
   hiccup does not eat a third of every lease.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from agentstream.journal import Store
from agentstream.journal.outage import OutageLog
from agentstream.runtime.leases import LeaseBook

log = logging.getLogger("agentstream.leases")


class LeaseKeeper:
    """Renews the claims in a :class:`LeaseBook` from a dedicated thread.

    Args:
        agent: The agent whose claims are renewed.
        book: The worker's leases.
        make_store: Builds the keeper's own journal connection (opened and closed in its thread).
        loop: The worker's event loop (for callbacks and the stall watchdog).
        on_stall: Called on the loop with the length of a loop stall once it ended.
        stall_threshold_s: A loop beat later than this is a stall.
        retry_s: Wait before retrying a failed renewal.
    """

    def __init__(
        self,
        agent: str,
        book: LeaseBook,
        make_store: Callable[[], Store],
        loop: asyncio.AbstractEventLoop,
        *,
        on_stall: Callable[[float], None],
        stall_threshold_s: float = 1.0,
        retry_s: float = 0.2,
    ) -> None:
        self.agent = agent
        self._outage = OutageLog(f"agent {agent}: lease renewal", log)
        self.book = book
        self._make_store = make_store
        self._loop = loop
        self._on_stall = on_stall
        self.stall_threshold_s = stall_threshold_s
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._opened = threading.Event()
        self._error: BaseException | None = None
        self.renewals = 0
        self.failures = 0
        self.stalls = 0

    def start(self) -> None:
        """Start the thread; return once its journal connection is open."""
        renew = threading.Thread(target=self._main, name=f"lease-keeper:{self.agent}", daemon=True)
        watch = threading.Thread(
            target=self._watch, name=f"loop-watchdog:{self.agent}", daemon=True
        )
        self._threads = [renew, watch]
        renew.start()
        self._opened.wait()
        if self._error is not None:
            raise self._error
        watch.start()

    def stop(self) -> None:
        """Stop renewing and close the keeper's journal connection."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        try:
            store = self._make_store()
            await store.open()
        except BaseException as exc:
            self._error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            await self._renew_loop(store)
        finally:
            await store.close()

    async def _sleep(self, seconds: float) -> None:
        await asyncio.to_thread(self._stop.wait, seconds)

    async def _renew_loop(self, store: Store) -> None:
        period = self.book.lease_s / 3
        while not self._stop.is_set():
            claims = self.book.claims()
            if not claims:
                await self._sleep(period)
                continue
            asked = time.time()
            try:
                lost = await store.renew(self.agent, claims, self.book.lease_s)
            except Exception as exc:
                self.failures += 1
                self._outage.failed(exc)
                await self._sleep(self._retry_s)
                continue
            self._outage.ok()
            self.renewals += 1
            for identity in self.book.renewed(claims, lost, asked + self.book.lease_s):
                log.warning(
                    "agent %s: claim on %s was taken over; its handler stops (lease_lost)",
                    self.agent,
                    identity,
                )
            await self._sleep(period)

    def _watch(self) -> None:
        """Loop-stall watchdog: time how long a beat waits to run on the worker's loop."""
        tick = min(0.1, self.stall_threshold_s / 4)
        while not self._stop.is_set():
            beat = threading.Event()
            sent = time.monotonic()
            if not self._call_soon(beat.set):
                return
            stalled = False
            while not beat.wait(timeout=tick) and not self._stop.is_set():
                waited = time.monotonic() - sent
                if not stalled and waited > self.stall_threshold_s:
                    stalled = True
                    log.warning(
                        "agent %s: event loop stalled for more than %.1fs (user code or a "
                        "blocking call on the loop?)",
                        self.agent,
                        self.stall_threshold_s,
                    )
            if stalled:
                self.stalls += 1
                length = time.monotonic() - sent
                log.warning("agent %s: event loop stall ended after %.1fs", self.agent, length)
                self._call_soon(self._on_stall, length)
            self._stop.wait(tick)

    def _call_soon(self, fn: Callable[..., object], *args: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the worker is gone
            return False
        return True
