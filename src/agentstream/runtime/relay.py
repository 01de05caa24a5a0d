"""The outbox relay: publishes journaled outputs and dead-letter records.

Rows are written in the same transaction as the completion (or dead letter) that produced them,
so an output can never be lost or invented by a crash. The relay leases a batch of rows, produces
them, waits for the broker, then marks them published. A crash between produce and mark makes
the next relay publish those rows again, each with the same deterministic ``dedupe_id`` (and
``agentstream-output-id`` header): the embedded log and SQS FIFO drop the repeat, consumers of
other brokers deduplicate on the header.

A record the broker refuses (a queue that does not exist, a record over the broker's size limit)
must not hold up everything behind it, and must not be dropped either: when a batch fails, the
relay publishes its rows one at a time, marks what went through, and holds the refused rows back
with capped exponential backoff, retrying them until they go through (after an operator fixes
the destination). They stay unpublished in the journal meanwhile, visible in
``agentstream status`` as pending outbox rows, and every refusal is logged with the row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from agentstream.journal.base import OutboxRow, Store
from agentstream.transports.base import Transport

log = logging.getLogger("agentstream.relay")


class OutboxRelay:
    """Moves outbox rows from the journal to the broker.

    Args:
        store: The journal.
        transport: Where records are produced.
        owner: This relay's id (outbox rows are leased to it).
        batch: Rows per round.
        lease_s: How long leased rows are reserved for this relay.
        idle_s: Longest sleep between rounds when not notified.
        hold_initial_s: First hold-back of a row the broker refused; doubles on every refusal.
        hold_max_s: Longest hold-back.
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
        self._held: dict[int, tuple[float, int]] = {}  # row id -> (retry at, refusals)
        self.published = 0
        self.refused = 0

    @property
    def held(self) -> int:
        """Rows the broker refused that are waiting for their next try."""
        return len(self._held)

    def notify(self) -> None:
        """New rows may be waiting."""
        self._wakeup.set()

    async def flush(self) -> int:
        """Publish everything pending now; return how many records were published."""
        total = 0
        while True:
            rows = await self.store.claim_outbox(self.owner, limit=self.batch, lease_s=self.lease_s)
            ready = self._ready(rows)
            if not ready:
                return total
            published = await self._publish(ready)
            if published:
                await self.store.mark_published([r.id for r in published])
                for r in published:
                    self._held.pop(r.id, None)
                total += len(published)
                self.published += len(published)
            if len(published) < len(ready):
                return total  # something was refused: the next round comes after a pause

    def _ready(self, rows: Sequence[OutboxRow]) -> list[OutboxRow]:
        """Rows to try now: not held back, and not behind a held row of the same topic and key.

        A refused record never lets later records of its key overtake it.
        """
        now = time.monotonic()
        blocked: set[tuple[str, bytes | None]] = set()
        ready = []
        for row in rows:
            lane = (row.record.topic, row.record.key)
            if lane in blocked:
                continue
            if self._held.get(row.id, (0.0, 0))[0] > now:
                blocked.add(lane)
                continue
            ready.append(row)
        return ready

    async def _publish(self, rows: Sequence[OutboxRow]) -> list[OutboxRow]:
        """Produce ``rows``; on failure one by one. Returns what the broker acknowledged."""
        try:
            await self.transport.produce([r.record for r in rows])
            return list(rows)
        except Exception as exc:
            if len(rows) == 1:
                self._hold(rows[0], exc)
                return []
            log.warning("outbox relay: a batch of %d was refused (%s); one by one", len(rows), exc)
        published: list[OutboxRow] = []
        refused_in_a_row = 0
        blocked: set[tuple[str, bytes | None]] = set()
        for row in rows:
            lane = (row.record.topic, row.record.key)
            if lane in blocked:
                continue
            try:
                await self.transport.produce([row.record])
            except Exception as exc:
                self._hold(row, exc)
                blocked.add(lane)
                refused_in_a_row += 1
                if refused_in_a_row >= 3 and not published:
                    break  # more likely the broker is down than every row bad: try again later
                continue
            refused_in_a_row = 0
            published.append(row)
        return published

    def _hold(self, row: OutboxRow, exc: BaseException) -> None:
        _, refusals = self._held.get(row.id, (0.0, 0))
        delay = min(self.hold_max_s, self.hold_initial_s * 2**refusals)
        self._held[row.id] = (time.monotonic() + delay, refusals + 1)
        self.refused += 1
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

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set, then once more."""
        while not stop.is_set():
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay: publish failed; retrying")
                await asyncio.sleep(1.0)
                continue
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
