"""The agent worker: a poll loop feeding the scheduler, with leases and commits alongside.

The poll loop only fetches, interprets (decode, identity, key) and queues; it never runs agent
code and never waits for it, so a ten-minute model call cannot stall polling (and so cannot get
the consumer evicted from its group). When the scheduler's buffer is full the loop pauses the
transport and keeps polling; it resumes once the buffer has drained to ``resume_ratio``.

Middleware that implements :class:`ConsumptionGate` (admission control does) can also hold
consumption: while any gate says ``should_pause(agent)``, the transport stays paused (lag
grows, nothing is dropped or dead-lettered) and the loop keeps polling; it resumes when every
gate lets go and the buffer has room.

Under ``ordering="strict"`` a sweep task resumes parked events whose key was released (its dead
letter redriven and completed, or discarded): they are queued, in parking order, on their key's
queue like fresh deliveries, but were acknowledged when parked, so they are not acknowledged
again.

Leases are renewed by a :class:`~agentstream.runtime.keeper.LeaseKeeper` on its own thread
with its own journal connection, so no user code (not even an async handler burning CPU on the
loop) can delay a renewal; the keeper's watchdog logs and counts loop stalls. Synchronous user
code runs in the worker's bounded pool (``user_threads``), never on the loop.

Every agent also runs the wake-up loop (:mod:`agentstream.runtime.wakeups`): waiting events
whose signal arrived or whose timer is due are queued like fresh deliveries; they were
acknowledged when they suspended, so they are not acknowledged again.

Shutdown, in order:

1. stop polling and pause the transport;
2. let running events finish for ``shutdown_grace_s``, then cancel them (their claims are
   released so another worker can take them at once);
3. commit the offsets of everything done;
4. close the transport (leave the group).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from agentstream.agent import AgentSpec, Ordering
from agentstream.config import RuntimeConfig
from agentstream.event import WEAK_IDENTITY_SOURCES, Event, TopicPartition
from agentstream.journal.outage import OutageLog, is_journal_outage
from agentstream.journal.store import Store
from agentstream.journal.waits import WaitJournal
from agentstream.llm.base import LLMProvider
from agentstream.middleware import (
    LoopStallInput,
    Middleware,
    MiddlewareStack,
    PollInput,
    RebalanceInput,
    WorkerInput,
)
from agentstream.runtime.executor import Executor
from agentstream.runtime.intake import interpret_all
from agentstream.runtime.keeper import LeaseKeeper
from agentstream.runtime.relay import OutboxRelay
from agentstream.runtime.scheduler import KeyedScheduler
from agentstream.runtime.wakeups import WakeUps
from agentstream.transports.base import Transport, TransportFatalError
from agentstream.usercode import UserCode

if TYPE_CHECKING:
    from agentstream.llm.admission import RateLimitRetry

log = logging.getLogger("agentstream.worker")


@runtime_checkable
class ConsumptionGate(Protocol):
    """Something that can hold an agent's consumption (a spent LLM budget, a rate-limit storm).

    The poll loop asks every turn, so the answer must be cheap (no I/O).
    """

    def should_pause(self, agent: str) -> bool:
        """Whether the worker of ``agent`` should stop fetching new events for now."""
        ...


def pause_reason(gate: ConsumptionGate, agent: str) -> str:
    """Why a gate holds an agent's consumption, in words."""
    explain = getattr(gate, "pause_reason", None)
    reason = explain(agent) if callable(explain) else None
    return str(reason) if reason else "LLM capacity or budget is spent"


class AgentWorker:
    """Consumes one agent's source and processes its events.

    Args:
        spec: The agent.
        transport: Its consumer (one per worker).
        store: The journal.
        provider: LLM provider.
        middleware: Middleware stack.
        config: Runtime settings.
        owner: Worker id recorded with claims.
        group: Consumer group.
        relay: The process's outbox relay, woken when a completion or dead letter wrote
            outbox records (a round per completion of an agent without outputs was a wasted
            journal query, a third of the journal's query time on a no-op agent).
        rate_limit_retry: How model calls answered 429 are retried at the call site.
        lease_store: Builds the lease keeper's own journal connection (None: leases are
            renewed on the event loop through ``store``, which user code can starve).
    """

    def __init__(
        self,
        spec: AgentSpec,
        transport: Transport,
        store: Store,
        provider: LLMProvider | None,
        middleware: MiddlewareStack,
        config: RuntimeConfig,
        *,
        owner: str,
        group: str,
        relay: OutboxRelay | None = None,
        rate_limit_retry: RateLimitRetry | None = None,
        lease_store: Callable[[], Store] | None = None,
    ) -> None:
        self.spec = spec
        self.transport = transport
        self.store = store
        self.mw = middleware
        self.config = config
        self.group = group
        self.relay = relay
        self.user_code = UserCode(config.user_threads)
        self._lease_store = lease_store
        self.keeper: LeaseKeeper | None = None
        self._reports: set[asyncio.Future[None]] = set()
        self.executor = Executor(
            spec,
            store,
            provider,
            middleware,
            owner=owner,
            group=group,
            lease_s=config.lease_s,
            rate_limit_retry=rate_limit_retry,
            user_code=self.user_code,
            on_outputs=None if relay is None else relay.notify,
        )
        self.scheduler = KeyedScheduler(
            self.executor.process, self._done, concurrency=spec.concurrency
        )
        self.paused = False
        self.gate_pauses = 0
        self.pause_reason = ""
        self.pause_causes: frozenset[str] = frozenset()
        self._buffer_full = False
        self._gated = False
        self._gates = [m for m in middleware.items if isinstance(m, ConsumptionGate)]
        self.delivered = 0
        self._warned_coordinates = False
        self._stop = asyncio.Event()
        self._unparking: dict[int, TopicPartition] = {}
        self.wakeups = (
            WakeUps(spec, store, self.scheduler, config) if isinstance(store, WaitJournal) else None
        )

    def _done(self, event: Event) -> None:
        if event.woken:
            if self.wakeups is not None:
                self.wakeups.done(event)
        elif event.parked_id is None:
            self.transport.ack(event.message)
        else:
            self._unparking.pop(event.parked_id, None)

    async def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions arrived."""
        log.info("agent %s: assigned %s", self.spec.name, ", ".join(map(str, partitions)))
        await self.mw.on_rebalance(
            RebalanceInput(self.spec.name, self.group, "assigned", tuple(partitions))
        )

    async def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions are leaving: drop their queued events, give running ones a short grace."""
        log.info("agent %s: revoked %s", self.spec.name, ", ".join(map(str, partitions)))
        await self.mw.on_rebalance(
            RebalanceInput(self.spec.name, self.group, "revoked", tuple(partitions))
        )
        running = self.scheduler.drop(partitions)
        gone = set(partitions)
        if self.wakeups is not None:
            self.wakeups.forget(gone)
        for parked_id, tp in list(self._unparking.items()):
            if tp in gone:
                del self._unparking[parked_id]
        if running:
            _, pending = await asyncio.wait(running, timeout=self.config.revoke_grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        """Ask the worker to shut down."""
        self._stop.set()

    async def run(self) -> None:
        """Poll and process until :meth:`stop`, then shut down in order."""
        await self.transport.start()
        await self.transport.subscribe([self.spec.source], self.group, self)
        system = str(getattr(self.transport, "messaging_system", ""))
        await self.mw.on_worker_start(WorkerInput(self.spec.name, self.group, system))
        side: list[asyncio.Task[None]] = []
        if self._lease_store is not None:
            self.keeper = LeaseKeeper(
                self.spec.name,
                self.executor.leases,
                self._lease_store,
                asyncio.get_running_loop(),
                on_stall=self._stalled,
                stall_threshold_s=self.config.loop_stall_s,
            )
            await asyncio.to_thread(self.keeper.start)
        else:
            side.append(asyncio.create_task(self._keep_leases(), name=f"leases:{self.spec.name}"))
        if self.spec.ordering == Ordering.STRICT:
            side.append(asyncio.create_task(self._unpark_loop(), name=f"unpark:{self.spec.name}"))
        if self.wakeups is not None:
            side.append(asyncio.create_task(self.wakeups.run(), name=f"wake:{self.spec.name}"))
        try:
            await self._poll_loop()
        finally:
            self.transport.pause()
            await self.scheduler.close(self.config.shutdown_grace_s)
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            if self.keeper is not None:
                await asyncio.to_thread(self.keeper.stop)
            self.user_code.close()
            try:
                await self._commit_or_defer()  # a failure here must not mask the run's error
            finally:
                await self.transport.close()
                await self.mw.on_worker_stop(WorkerInput(self.spec.name, self.group, system))

    async def _poll_loop(self) -> None:
        cfg = self.config
        high = cfg.max_buffered
        low = max(0, int(high * cfg.resume_ratio))
        next_commit = time.monotonic() + cfg.commit_interval_s
        wants_poll = self.mw.wants(Middleware.on_poll)
        next_lag = time.monotonic()
        failures = 0
        poll_outage = OutageLog(f"agent {self.spec.name}: polling the broker", log)
        while not self._stop.is_set():
            room = max(1, high - self.scheduler.buffered)
            try:
                messages = await self.transport.poll(min(cfg.poll_batch, room), cfg.poll_timeout_s)
                failures = 0
                poll_outage.ok()
            except (asyncio.CancelledError, TransportFatalError):
                raise
            except Exception as exc:
                # A broker or journal outage: keep what is queued, back off, poll again. Events
                # in flight finish or retry on their own; nothing is acknowledged that is not done.
                # One log line when it starts, reminders while it lasts, one when it ends.
                failures += 1
                delay = min(5.0, 0.2 * 2 ** min(failures, 8))
                poll_outage.failed(exc)
                await asyncio.sleep(delay)
                continue
            for event in await interpret_all(self.spec, messages):
                if (
                    event.identity_source in WEAK_IDENTITY_SOURCES
                    and self.spec.identity is None
                    and not self._warned_coordinates
                ):
                    self._warned_coordinates = True
                    log.warning(
                        "agent %s: events have no id header and no identity function; using "
                        "%s as identity, which does not catch producer duplicates. Set "
                        "identity= on the agent.",
                        self.spec.name,
                        "the broker's message id"
                        if event.identity_source == "message_id"
                        else "source coordinates (topic/partition/offset)",
                    )
                self.scheduler.submit(event)
            self.delivered += len(messages)
            if time.monotonic() >= next_commit:
                # After the batch is queued: a failed commit must never drop polled messages.
                await self._commit_or_defer()
                next_commit = time.monotonic() + cfg.commit_interval_s
            buffered = self.scheduler.buffered
            self._apply_pause(buffered, high, low)
            if wants_poll:
                lag = None
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + cfg.lag_interval_s
                    try:
                        lag = await self.transport.lag()
                    except Exception:
                        log.debug("agent %s: lag unavailable", self.spec.name, exc_info=True)
                await self.mw.on_poll(
                    PollInput(
                        self.spec.name,
                        len(messages),
                        buffered,
                        self.scheduler.in_flight,
                        self.paused,
                        lag,
                        self.pause_causes,
                        None if self.wakeups is None or lag is None else self.wakeups.waiting,
                    )
                )
            if not messages and self.paused:
                await asyncio.sleep(min(cfg.poll_timeout_s, 0.05))

    async def _commit_or_defer(self) -> None:
        """Commit the done watermark; on failure log it and leave it to the next round."""
        try:
            await self.transport.commit()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Nothing is lost: the watermark stays where it was and is committed next time;
            # at worst a crash before then redelivers events the journal already answers.
            log.warning("agent %s: offset commit failed; will retry", self.spec.name, exc_info=True)

    def _apply_pause(self, buffered: int, high: int, low: int) -> None:
        """Pause while the buffer is full (with hysteresis) or any gate holds consumption."""
        if buffered >= high:
            self._buffer_full = True
        elif buffered <= low:
            self._buffer_full = False
        holding = [g for g in self._gates if g.should_pause(self.spec.name)]
        gated = bool(holding)
        self.pause_causes = frozenset(
            [*(getattr(g, "pause_cause", "llm_capacity") for g in holding)]
            + (["buffer_full"] if self._buffer_full else [])
        )
        if gated != self._gated:
            self._gated = gated
            if gated:
                self.gate_pauses += 1
            self.pause_reason = "; ".join(pause_reason(g, self.spec.name) for g in holding)
            log.info(
                "agent %s: %s",
                self.spec.name,
                f"consumption paused: {self.pause_reason}"
                if gated
                else "consumption resumed: LLM capacity is back",
            )
        want = self._buffer_full or gated
        if want and not self.paused:
            self.transport.pause()
            self.paused = True
        elif not want and self.paused:
            self.transport.resume()
            self.paused = False

    async def _unpark_loop(self) -> None:
        unpark_outage = OutageLog(f"agent {self.spec.name}: resuming parked events", log)
        while True:
            await asyncio.sleep(self.config.park_sweep_s)
            try:
                await self.unpark_released()
            except Exception as exc:
                if is_journal_outage(exc):
                    unpark_outage.failed(exc)
                else:
                    log.exception("agent %s: resuming parked events failed", self.spec.name)
            else:
                unpark_outage.ok()

    async def unpark_released(self) -> int:
        """Queue parked events of released keys on partitions this worker owns; return how many."""
        owned = set(self.transport.assignment())
        rows = [
            row
            for row in await self.store.parked(self.spec.name, releasable=True)
            if row.id not in self._unparking and row.message.tp in owned
        ]
        events = await interpret_all(self.spec, [row.message for row in rows])
        queued = 0
        for row, event in zip(rows, events, strict=True):
            tp = row.message.tp
            event.identity = row.event_id
            event.key = row.key
            event.parked_id = row.id
            self._unparking[row.id] = tp
            self.scheduler.submit(event)
            queued += 1
        if queued:
            log.info("agent %s: resuming %d parked event(s)", self.spec.name, queued)
        return queued

    def _stalled(self, stall_s: float) -> None:
        if self.mw.wants(Middleware.on_loop_stall):
            task = asyncio.ensure_future(
                self.mw.on_loop_stall(LoopStallInput(self.spec.name, stall_s))
            )
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)

    async def _keep_leases(self) -> None:
        """Renewal on the loop, for workers built without a lease store (in-process tests)."""
        book = self.executor.leases
        period = self.config.lease_s / 3
        renew_outage = OutageLog(f"agent {self.spec.name}: lease renewal", log)
        while True:
            await asyncio.sleep(period)
            claims = book.claims()
            if not claims:
                continue
            asked = time.time()
            try:
                lost = await self.store.renew(self.spec.name, claims, self.config.lease_s)
            except Exception as exc:
                renew_outage.failed(exc)
                continue
            renew_outage.ok()
            for identity in book.renewed(claims, lost, asked + self.config.lease_s):
                log.warning(
                    "agent %s: claim on %s was taken over; its handler stops (lease_lost)",
                    self.spec.name,
                    identity,
                )
