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
exponential backoff, so no relay claims it until then and it takes no room in later batches.
Later records of the same topic and key are deferred behind it and are sent one by one after
it, so they never overtake it (records without a key have no order to keep). Refused rows stay
unpublished in the journal, counted as pending outbox rows by ``agentstream status``, and every
refusal is logged with the row, until an operator fixes the destination and they go through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from agentstream.journal.base import OutboxRow, Store
from agentstream.transports.base import PartialPublishError, Transport

log = logging.getLogger("agentstream.relay")

Lane = tuple[str, bytes | int]
"""Records that must keep their order: (topic, key); a keyless record is a lane of its own."""

_FOLLOW_MARGIN_S = 1.0  # records behind a refused one come back this long after it


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
        self._refusals: dict[int, int] = {}  # refused row id -> refusals so far
        self._blocked: dict[Lane, tuple[int, float]] = {}  # lane -> (refused row, back at)
        self.published = 0
        self.refused = 0

    @property
    def held(self) -> int:
        """Lanes waiting behind a record the broker refused."""
        return len(self._blocked)

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
            ready = await self._defer_blocked(rows)
            published, refused = await self._publish(ready)
            if published:
                await self.store.mark_published([r.id for r in published])
                for row in published:
                    self._refusals.pop(row.id, None)
                    blocked = self._blocked.get(lane_of(row))
                    if blocked is not None and blocked[0] == row.id:
                        del self._blocked[lane_of(row)]
                total += len(published)
                self.published += len(published)
            if refused:
                return total  # the next round comes after a pause

    async def _defer_blocked(self, rows: Sequence[OutboxRow]) -> list[OutboxRow]:
        """Defer rows queued behind a refused record that is not back yet; return the rest."""
        now = time.monotonic()
        present = {r.id for r in rows}
        ready: list[OutboxRow] = []
        waits: dict[float, list[int]] = {}
        for row in rows:
            blocked = self._blocked.get(lane_of(row))
            if blocked is None or blocked[0] in present:
                ready.append(row)
                continue
            refused_id, back_at = blocked
            if now > back_at + self.lease_s + self.hold_max_s:
                # Its refused record never came back here: another relay published it.
                del self._blocked[lane_of(row)]
                ready.append(row)
                continue
            if row.id < refused_id:
                ready.append(row)
                continue
            wait = round(max(0.0, back_at - now) + _FOLLOW_MARGIN_S, 3)
            waits.setdefault(wait, []).append(row.id)
        for wait, ids in waits.items():
            await self.store.defer_outbox(ids, wait)
        return ready

    async def _publish(self, rows: Sequence[OutboxRow]) -> tuple[list[OutboxRow], int]:
        """Produce ``rows``: lanes with a refusal one by one, the rest as a batch.

        Returns what the broker acknowledged and how many rows were refused.
        """
        careful = [r for r in rows if lane_of(r) in self._blocked]
        batch = [r for r in rows if lane_of(r) not in self._blocked]
        published: list[OutboxRow] = []
        if batch:
            try:
                await self.transport.produce([r.record for r in batch])
                published.extend(batch)
                batch = []
            except Exception as exc:
                acked = exc.acknowledged if isinstance(exc, PartialPublishError) else frozenset()
                published.extend(r for i, r in enumerate(batch) if i in acked)
                batch = [r for i, r in enumerate(batch) if i not in acked]
                log.warning(
                    "outbox relay: %d of a batch of %d refused (%s); one by one",
                    len(batch),
                    len(batch) + len(acked),
                    exc,
                )
        refused = 0
        if batch or careful:
            done, refused = await self._one_by_one(sorted(batch + careful, key=lambda r: r.id))
            published.extend(done)
        return published, refused

    async def _one_by_one(self, rows: Sequence[OutboxRow]) -> tuple[list[OutboxRow], int]:
        published: list[OutboxRow] = []
        refused_in_a_row = refused = 0
        stopped: dict[Lane, tuple[int, float]] = {}
        for row in rows:
            lane = lane_of(row)
            if lane in stopped:
                await self.store.defer_outbox([row.id], stopped[lane][1] + _FOLLOW_MARGIN_S)
                continue
            try:
                await self.transport.produce([row.record])
            except Exception as exc:
                delay = self._refuse(row, exc)
                await self.store.defer_outbox([row.id], delay)
                stopped[lane] = (row.id, delay)
                refused += 1
                refused_in_a_row += 1
                if refused_in_a_row >= 3 and not published:
                    break  # more likely the broker is down than every row bad: try later
                continue
            refused_in_a_row = 0
            published.append(row)
        return published, refused

    def _refuse(self, row: OutboxRow, exc: BaseException) -> float:
        refusals = self._refusals.get(row.id, 0)
        delay = min(self.hold_max_s, self.hold_initial_s * 2.0**refusals)
        self._refusals[row.id] = refusals + 1
        self._blocked[lane_of(row)] = (row.id, time.monotonic() + delay)
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
        return delay

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
