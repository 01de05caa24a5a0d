"""The writes of a SQL journal, as the backends see them: one input value per write.

:class:`SqlJournal` implements the :class:`~agentstream.journal.store.Store` write methods once:
it reads the clock, shapes the request into one frozen input (:class:`ClaimBatch`,
:class:`CompletionBatch`, :class:`DeadLetterWrite`, :class:`RedriveWrite`), hands it to the
backend, which runs the SQL in one transaction following :mod:`agentstream.journal.lifecycle`,
and puts the answers back in request order. A single claim or completion is a batch of one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentstream.event import OutgoingRecord
from agentstream.failures import FencedError
from agentstream.journal import lifecycle
from agentstream.journal.packing import compact_envelope
from agentstream.journal.reads import JournalReads
from agentstream.journal.records import Claim, Completion, EventMeta, RedriveMode

__all__ = ["ClaimBatch", "CompletionBatch", "DeadLetterWrite", "RedriveWrite", "SqlJournal"]


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    """Claims of several events, asked at ``now`` for a lease until ``until``.

    Attributes:
        agent: The agent claiming.
        metas: The first request's metadata of each event id, in request order.
        asked: How many requests named each id (a settled event counts every one).
        owner: The claiming worker.
        now: When the claim is made (wall-clock seconds).
        until: When a granted lease ends.
    """

    agent: str
    metas: dict[str, EventMeta]
    asked: Counter[str]
    owner: str
    now: float
    until: float


@dataclass(frozen=True, slots=True)
class CompletionBatch:
    """Completions of ``(event_id, epoch, completion)`` items at ``now``."""

    agent: str
    items: Sequence[tuple[str, int, Completion]]
    now: float


@dataclass(frozen=True, slots=True)
class DeadLetterWrite:
    """An event dead-lettered under ``epoch``, with its envelope and DLQ records."""

    agent: str
    event_id: str
    epoch: int
    failure_class: str
    envelope: dict[str, Any]
    outputs: Sequence[OutgoingRecord]
    now: float


@dataclass(frozen=True, slots=True)
class RedriveWrite:
    """A dead event reset for another run, its steps forgotten if ``forget_steps``."""

    agent: str
    event_id: str
    forget_steps: bool
    republish: Sequence[OutgoingRecord] = field(default=())
    now: float = 0.0


class SqlJournal(JournalReads):
    """The write front of a SQL journal; a backend supplies the four ``*_batch``/write methods."""

    _clock: Callable[[], float]

    async def claim_batch(self, batch: ClaimBatch) -> dict[str, Claim]:
        """Decide and write the claims of a batch; one answer per event id."""
        raise NotImplementedError

    async def complete_batch(self, batch: CompletionBatch) -> list[FencedError | None]:
        """Complete the live claims of a batch; a FencedError for every other item."""
        raise NotImplementedError

    async def write_dead_letter(self, write: DeadLetterWrite) -> int:
        """Mark the event dead, store the envelope and queue DLQ records; return the id."""
        raise NotImplementedError

    async def put_blobs(self, blobs: Mapping[str, str]) -> None:
        """Store content-addressed texts (the backend's blob mixin)."""
        raise NotImplementedError

    async def reset_dead(self, write: RedriveWrite) -> bool:
        """Reset a dead event and queue its re-publication; False if it is not dead."""
        raise NotImplementedError

    async def claim(
        self, agent: str, event_id: str, *, owner: str, lease_s: float, meta: EventMeta
    ) -> Claim:
        """Atomically claim an event (a batch of one)."""
        [claim] = await self.claim_many(agent, [(event_id, meta)], owner=owner, lease_s=lease_s)
        return claim

    async def claim_many(
        self,
        agent: str,
        requests: Sequence[tuple[str, EventMeta]],
        *,
        owner: str,
        lease_s: float,
    ) -> list[Claim]:
        """Claim several events in one transaction; answers are in request order."""
        if not requests:
            return []
        now = self._clock()
        metas: dict[str, EventMeta] = {}
        for event_id, meta in requests:
            metas.setdefault(event_id, meta)
        asked = Counter(event_id for event_id, _ in requests)
        answers = await self.claim_batch(ClaimBatch(agent, metas, asked, owner, now, now + lease_s))
        return lifecycle.answer_in_order([event_id for event_id, _ in requests], answers)

    async def complete(self, agent: str, event_id: str, epoch: int, completion: Completion) -> None:
        """Complete the event, enqueue outputs and record the entity version, atomically."""
        [error] = await self.complete_many(agent, [(event_id, epoch, completion)])
        if error is not None:
            raise error

    async def complete_many(
        self, agent: str, items: Sequence[tuple[str, int, Completion]]
    ) -> list[FencedError | None]:
        """Complete several events in one transaction; a FencedError for each stale claim."""
        if not items:
            return []
        return await self.complete_batch(CompletionBatch(agent, items, self._clock()))

    async def dead_letter(
        self,
        agent: str,
        event_id: str,
        epoch: int,
        *,
        failure_class: str,
        envelope: dict[str, Any],
        outputs: Sequence[OutgoingRecord] = (),
    ) -> int:
        """Mark the event dead with its envelope and DLQ records, atomically.

        The envelope is stored compacted (:func:`~agentstream.journal.packing.compact_envelope`):
        its blobs are written first, in a transaction of their own (a blob no row references is
        harmless and pruned).
        """
        stored, blobs = compact_envelope(envelope)
        if blobs:
            await self.put_blobs(blobs)
        write = DeadLetterWrite(
            agent, event_id, epoch, failure_class, stored, outputs, self._clock()
        )
        return await self.write_dead_letter(write)

    async def redrive(
        self,
        agent: str,
        event_id: str,
        *,
        mode: RedriveMode,
        republish: Sequence[OutgoingRecord] = (),
    ) -> bool:
        """Reset a dead event and queue its re-publication, atomically."""
        forget = mode == RedriveMode.FRESH
        return await self.reset_dead(
            RedriveWrite(agent, event_id, forget, republish, self._clock())
        )
