"""The outbox relay: publishes journaled outputs and dead-letter records.

Rows are written in the same transaction as the completion (or dead letter) that produced them,
so an output can never be lost or invented by a crash. The relay leases a batch of rows, produces
them, waits for the broker, then marks them published. A crash between produce and mark makes
the next relay publish those rows again, each with the same deterministic ``dedupe_id`` (and
``agentstream-output-id`` header): the embedded log and SQS FIFO drop the repeat, consumers of
other brokers deduplicate on the header.
"""

from __future__ import annotations

import asyncio
import logging

from agentstream.journal.base import Store
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
    ) -> None:
        self.store = store
        self.transport = transport
        self.owner = owner
        self.batch = batch
        self.lease_s = lease_s
        self.idle_s = idle_s
        self._wakeup = asyncio.Event()
        self.published = 0

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
            await self.transport.produce([r.record for r in rows])
            await self.store.mark_published([r.id for r in rows])
            total += len(rows)
            self.published += len(rows)

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
