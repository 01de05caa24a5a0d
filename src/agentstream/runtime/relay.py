"""The outbox relay: publishes journaled outputs and dead-letter records.

Rows are written in the same transaction as the completion (or dead letter) that produced them,
so an output can never be lost or invented by a crash. The relay leases a batch of rows, produces
them, waits for the broker, then marks them published. A crash between produce and mark makes
the next relay publish those rows again, each with the same deterministic ``dedupe_id`` (and
``agentstream-output-id`` header): the embedded log and SQS FIFO drop the repeat, consumers of
other brokers deduplicate on the header.

A record the broker refuses (a queue that does not exist, a record over the broker's size limit)
must not hold up everything behind it, and must not be dropped either. When a batch fails, the
relay marks what the broker acknowledged (``PartialPublishError``), publishes the rest one at a
time, and defers each refused row in the journal (``Store.defer_outbox``) with capped
exponential backoff. The journal keeps the order of each topic and key across every relay: a
row behind a deferred (or otherwise leased) row of its key is not claimable until that row is
published (``Store.claim_outbox``), so later records of the key wait and everything else keeps
flowing. Refused rows stay unpublished, counted as pending outbox rows by ``agentstream status``,
and every refusal is logged with the row, until an operator fixes the destination. When every
record of a round is refused and none goes through, the broker is more likely down than every
record bad: the relay pauses without deferring anything.

Whether outputs leave at all is watched (:mod:`agentstream.runtime.publish_watch`): the backlog
and the age of its oldest row are reported every ``watch_interval_s`` (``on_outbox`` middleware
hook: metrics, health), and a relay that publishes nothing for ``publish_exit_s`` ends the
worker with :class:`~agentstream.runtime.publish_watch.PublishStalled`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from agentstream.journal.outage import OutageLog
from agentstream.journal.records import OutboxRow
from agentstream.journal.store import Store
from agentstream.middleware import Middleware, MiddlewareStack
from agentstream.runtime.publish_watch import PublishWatch
from agentstream.transports.base import PartialPublishError, Transport

log = logging.getLogger("agentstream.relay")

Lane = tuple[str, bytes | int]
"""Records that must keep their order: (topic, key); a keyless record is a lane of its own."""


def lane_of(row: OutboxRow) -> Lane:
    """The ordering lane of an outbox row."""
    key = row.record.key
    return (row.record.topic, key if key is not None else row.id)


class OutboxRelay:
    """Moves outbox rows from the journal to the broker.

    Args:
        store: The journal.
        transport: Where records are produced.
        owner: This relay's id (outbox rows are leased to it).
        batch: Rows per round.
        lease_s: How long leased rows are reserved for this relay.
        idle_s: Longest sleep between rounds when not notified.
        hold_initial_s: First deferral of a row the broker refused; doubles on every refusal.
        hold_max_s: Longest deferral.
        watch: Tracks whether outputs leave (default: unhealthy after 60 s, exit after 300 s).
        middleware: Hears ``on_outbox`` every ``watch_interval_s``.
        watch_interval_s: How often the backlog is read.
    """

    def __init__(
        self,
        store: Store,
        transport: Transport,
        *,
        owner: str,
        batch: int = 500,
        lease_s: float = 30.0,
        idle_s: float = 0.5,
        hold_initial_s: float = 1.0,
        hold_max_s: float = 60.0,
        watch: PublishWatch | None = None,
        middleware: MiddlewareStack | None = None,
        watch_interval_s: float = 2.0,
    ) -> None:
        self.store = store
        self.transport = transport
        self.owner = owner
        self.batch = batch
        self.lease_s = lease_s
        self.idle_s = idle_s
        self.hold_initial_s = hold_initial_s
        self.hold_max_s = hold_max_s
        self._wakeup = asyncio.Event()
        self._refusals: dict[int, int] = {}  # refused row id -> refusals so far (backoff)
        self.published = 0
        self.refused = 0
        self.watch = watch or PublishWatch()
        self._outage = OutageLog("outbox relay: journal or broker", log)
        self._mw = middleware
        self.watch_interval_s = watch_interval_s

    @property
    def held(self) -> int:
        """Rows this relay deferred after a refusal that it has not seen published yet."""
        return len(self._refusals)

    def notify(self) -> None:
        """New rows may be waiting."""
        self._wakeup.set()

    async def flush(self) -> int:
        """Publish everything pending now; return how many records were published."""
        total = 0
        while True:
            rows = await self.store.claim_outbox(self.owner, limit=self.batch, lease_s=self.lease_s)
            if not rows:
                return total
            self.watch.round_started()
            try:
                published = await self._publish(rows)
                if published:
                    self.watch.published()
                else:
                    self.watch.nothing_taken()
            finally:
                self.watch.round_ended()
            if published:
                await self.store.mark_published([r.id for r in published])
                for row in published:
                    self._refusals.pop(row.id, None)
                total += len(published)
                self.published += len(published)
            if len(published) < len(rows):
                return total  # something was refused or left: the next round is after a pause

    async def _publish(self, rows: Sequence[OutboxRow]) -> list[OutboxRow]:
        """Produce ``rows`` as one batch, else one by one. Returns what the broker took."""
        if len(rows) == 1:
            return await self._one_by_one(rows)
        try:
            await self.transport.produce([r.record for r in rows])
            return list(rows)
        except Exception as exc:
            acked = exc.acknowledged if isinstance(exc, PartialPublishError) else frozenset()
            log.warning(
                "outbox relay: %d of a batch of %d not taken (%s); one by one",
                len(rows) - len(acked),
                len(rows),
                exc,
            )
        published = [r for i, r in enumerate(rows) if i in acked]
        rest = [r for i, r in enumerate(rows) if i not in acked]
        return published + await self._one_by_one(rest)

    async def _one_by_one(self, rows: Sequence[OutboxRow]) -> list[OutboxRow]:
        published: list[OutboxRow] = []
        refused: list[tuple[OutboxRow, BaseException]] = []
        stopped: set[Lane] = set()
        behind: list[int] = []
        deadline = time.monotonic() + self.lease_s / 2  # finish well inside the lease
        for row in rows:
            lane = lane_of(row)
            if lane in stopped:
                behind.append(row.id)  # released below; the journal keeps it behind the refusal
                continue
            if time.monotonic() > deadline or (len(refused) >= 3 and not published):
                break  # the rest stay leased to this relay and come back next round
            try:
                await self.transport.produce([row.record])
            except Exception as exc:
                refused.append((row, exc))
                stopped.add(lane)
                continue
            published.append(row)
        if refused and not published and len(refused) >= 3:
            log.warning(
                "outbox relay: %d records in a row not taken (%s); is the broker down? "
                "retrying after a pause",
                len(refused),
                refused[0][1],
            )
        else:
            await self._refuse(refused)
        await self.store.defer_outbox(self.owner, behind, 0.0)
        return published

    async def _refuse(self, refused: Sequence[tuple[OutboxRow, BaseException]]) -> None:
        """Defer refused rows with backoff and log each."""
        for row, exc in refused:
            refusals = self._refusals.get(row.id, 0)
            delay = min(self.hold_max_s, self.hold_initial_s * 2.0**refusals)
            if len(self._refusals) < 10_000:  # bounded: a lost entry only resets its backoff
                self._refusals[row.id] = refusals + 1
            self.refused += 1
            await self.store.defer_outbox(self.owner, [row.id], delay)
            log.error(
                "outbox relay: record %d of event %s/%s to %r refused (%s: %s); "
                "kept in the outbox, next try in %.0fs",
                row.seq,
                row.agent,
                row.event_id,
                row.record.topic,
                type(exc).__name__,
                exc,
                delay,
            )

    async def observe(self) -> None:
        """Read the backlog, tell the middleware, and end the run if outputs never leave.

        Raises:
            PublishStalled: Nothing could be published for the watch's ``exit_after_s``.
        """
        try:
            pending, oldest = await self.store.outbox_backlog()
        except asyncio.CancelledError:
            raise
        except Exception:  # a journal outage: the backlog is unknown, the stall clock runs on
            log.debug("outbox relay: backlog unavailable", exc_info=True)
            self.watch.journal_ok = False
        else:
            self.watch.journal_ok = True
            self.watch.backlog(pending, oldest)
        if self._mw is not None and self._mw.wants(Middleware.on_outbox):
            try:
                await self._mw.on_outbox(self.watch.snapshot())
            except Exception:
                log.exception("outbox relay: an on_outbox middleware failed")
        self.watch.check()

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set, then once more.

        Raises:
            PublishStalled: Outputs could not be published for ``publish_exit_s``.
        """
        publishing = asyncio.create_task(self._publish_loop(stop), name="outbox-publish")
        try:
            while not publishing.done():
                await self.observe()
                await asyncio.wait({publishing}, timeout=self.watch_interval_s)
        finally:
            if not publishing.done():
                publishing.cancel()
            await asyncio.gather(publishing, return_exceptions=True)
        await publishing

    async def _publish_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._outage.failed(exc)
                await asyncio.sleep(1.0)
                continue
            self._outage.ok()
            self._wakeup.clear()
            waiter = asyncio.create_task(self._wakeup.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait(
                {waiter, stopper}, timeout=self.idle_s, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            stopper.cancel()
        try:
            await self.flush()
        except Exception:
            log.exception("outbox relay: final flush failed; rows stay in the outbox")
