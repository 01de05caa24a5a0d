"""The journal's contract: one protocol per role, and :class:`Store`, which has them all.

The runtime's hot path needs :class:`EventJournal` (replay implements only that, over recorded
data); the outbox relay :class:`OutboxQueue`; the command line :class:`OperatorTools`;
retention :class:`Retention`; shadow re-evaluation :class:`ShadowRuns`. Every backend (SQLite,
PostgreSQL) implements :class:`Store` and passes the same conformance suite in
``tests/conformance``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from agentstream.event import Message, OutgoingRecord
from agentstream.failures import FencedError
from agentstream.journal.records import (
    Claim,
    Completion,
    DeadLetterRecord,
    EventMeta,
    EventRecord,
    EventState,
    FailureRecord,
    OutboxRow,
    ParkedRecord,
    RedriveMode,
    ShadowResult,
    ShadowRun,
    StepRecord,
)

__all__ = ["EventJournal", "OperatorTools", "OutboxQueue", "Retention", "ShadowRuns", "Store"]


class EventJournal(Protocol):
    """The part of the journal that processing one event uses (executor and context).

    :class:`Store` has all of it; replay implements only this, over recorded data, so a
    replayed event runs through the live executor without touching live state. Writes that
    carry an ``epoch`` raise :class:`~agentstream.failures.FencedError` when the event's
    current epoch differs or it is no longer claimed.
    """

    async def claim(
        self, agent: str, event_id: str, *, owner: str, lease_s: float, meta: EventMeta
    ) -> Claim:
        """Atomically claim an event for processing, or report why not.

        Every answer but ``busy`` counts one delivery on the event's row (busy answers are
        repeated while the same delivery waits for the holder).
        """
        ...

    async def claim_many(
        self,
        agent: str,
        requests: Sequence[tuple[str, EventMeta]],
        *,
        owner: str,
        lease_s: float,
    ) -> list[Claim]:
        """Claim several events at once, answering in request order.

        An id repeated within one call is granted once and reported busy after that.
        """
        ...

    async def renew(
        self, agent: str, claims: Sequence[tuple[str, int]], lease_s: float
    ) -> set[str]:
        """Extend the leases of ``(event_id, epoch)`` claims; return the ids whose claim is lost.

        A lease ends no earlier than ``lease_s`` from now, and never earlier than it did: an
        effect's guard extends it past the effect's deadline, and routine renewal keeps that.
        """
        ...

    async def release(
        self, agent: str, event_id: str, epoch: int, *, not_before: float = 0.0
    ) -> None:
        """Give a claim back (shutdown, revoke, retry backoff until ``not_before``)."""
        ...

    async def write_step(self, agent: str, event_id: str, epoch: int, step: StepRecord) -> None:
        """Insert or replace the step at ``step.seq``."""
        ...

    async def complete(self, agent: str, event_id: str, epoch: int, completion: Completion) -> None:
        """Mark the event completed and enqueue its outputs, atomically."""
        ...

    async def complete_many(
        self, agent: str, items: Sequence[tuple[str, int, Completion]]
    ) -> list[FencedError | None]:
        """Complete several ``(event_id, epoch, completion)`` items at once.

        Each item succeeds or gets a FencedError independently of the others.
        """
        ...

    async def record_failure(
        self, agent: str, event_id: str, epoch: int, failure: FailureRecord
    ) -> None:
        """Append a failed attempt to the event's history."""
        ...

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
        """Mark the event dead, store its envelope and enqueue DLQ records; return the id."""
        ...

    async def applied_version(self, agent: str, entity: str) -> int | None:
        """The highest entity version an event of ``agent`` has applied, if any."""
        ...

    async def steps(self, agent: str, event_id: str) -> list[StepRecord]:
        """An event's steps in order."""
        ...

    async def failures(self, agent: str, event_id: str) -> list[FailureRecord]:
        """An event's failed attempts in order."""
        ...

    async def park(self, agent: str, event_id: str, key: str, message: Message) -> bool:
        """Park an event if its key is blocked by another event or already has parked events.

        Atomic with respect to :meth:`redrive`, :meth:`discard` and other parks. Parking the
        same event twice keeps one row. Returns whether the event is parked.
        """
        ...

    async def blocked_by(self, agent: str, key: str) -> str | None:
        """The event whose dead letter blocks ``key`` (``dead`` or ``redriven``), if any."""
        ...

    async def unpark(self, agent: str, parked_id: int) -> None:
        """Forget a parked event (it has been processed)."""
        ...

    async def parked(
        self, agent: str, *, key: str | None = None, releasable: bool = False, limit: int = 1000
    ) -> list[ParkedRecord]:
        """Parked events in arrival order; ``releasable`` keeps only keys no longer blocked."""
        ...

    async def put_blobs(self, blobs: Mapping[str, str]) -> None:
        """Store content-addressed texts by digest; a digest already stored is left as it is."""
        ...

    async def get_blobs(self, digests: Collection[str]) -> dict[str, str]:
        """The stored texts among ``digests`` (unknown digests are absent from the result)."""
        ...


class OutboxQueue(Protocol):
    """The outbox as the relay sees it: lease, publish, defer."""

    async def claim_outbox(self, owner: str, *, limit: int, lease_s: float) -> list[OutboxRow]:
        """Lease unpublished outbox rows to one relay, oldest first.

        A row is claimable when its lease lapsed (or ``owner`` holds it) and no earlier
        unpublished row with the same topic and key is leased to another relay or deferred: the
        records of one key are published in order, whichever relay publishes them. Rows without
        a key have no order to keep.
        """
        ...

    async def mark_published(self, ids: Sequence[int]) -> None:
        """Record that outbox rows were published."""
        ...

    async def defer_outbox(self, owner: str, ids: Sequence[int], delay_s: float) -> None:
        """Release ``owner``'s leased, unpublished rows; no relay claims them for ``delay_s``.

        A deferred row also holds back the later rows of its topic and key (see
        :meth:`claim_outbox`), so they cannot overtake it.
        """
        ...


class OperatorTools(Protocol):
    """What the command line and the redrive tools read and change: inspection, redrive, discard."""

    async def get_event(self, agent: str, event_id: str) -> EventRecord | None:
        """One event's row."""
        ...

    async def list_events(
        self,
        *,
        agent: str | None = None,
        state: EventState | None = None,
        key: str | None = None,
        since: float | None = None,
        until: float | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset_from: int | None = None,
        offset_to: int | None = None,
        event_ids: Sequence[str] | None = None,
        oldest_first: bool = False,
        limit: int | None = 100,
    ) -> list[EventRecord]:
        """Events filtered; newest first (by last update), or oldest first (by creation).

        ``since``/``until`` bound the creation time (seconds, ``until`` exclusive);
        ``offset_from``/``offset_to`` bound the source offset (inclusive); ``limit=None``
        returns every match.
        """
        ...

    async def outbox(self, agent: str, event_id: str) -> list[OutboxRow]:
        """An event's outbox rows in order."""
        ...

    async def steps_of(self, agent: str, event_ids: Sequence[str]) -> dict[str, list[StepRecord]]:
        """The steps of several events in order (every id is a key; one query)."""
        ...

    async def outbox_of(self, agent: str, event_ids: Sequence[str]) -> dict[str, list[OutboxRow]]:
        """The outbox rows of several events in order (every id is a key; one query)."""
        ...

    async def dead_letters(
        self,
        *,
        agent: str | None = None,
        status: str | None = None,
        failure_class: str | None = None,
        key: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = 100,
    ) -> list[DeadLetterRecord]:
        """Dead letters, newest first; ``since``/``until`` bound the creation time."""
        ...

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None:
        """One dead letter by id."""
        ...

    async def parked(
        self, agent: str, *, key: str | None = None, releasable: bool = False, limit: int = 1000
    ) -> list[ParkedRecord]:
        """Parked events in arrival order; ``releasable`` keeps only keys no longer blocked."""
        ...

    async def counts(self, agent: str | None = None) -> dict[str, int]:
        """Events per state, plus dead_letters, dead_letters_open, parked and outbox_pending."""
        ...

    async def outbox_backlog(self) -> tuple[int, float | None]:
        """Unpublished outbox rows, and when the oldest of them was written (None: no backlog).

        Cheap (the pending-rows index), so a relay can ask every few seconds.
        """
        ...

    async def agents(self) -> list[str]:
        """Every agent with at least one event in the journal, sorted."""
        ...

    async def unpriced_calls(self) -> dict[tuple[str, str], int]:
        """Model calls journaled with ``cost_source`` ``unpriced``, per (agent, model)."""
        ...

    async def redrive(
        self,
        agent: str,
        event_id: str,
        *,
        mode: RedriveMode,
        republish: Sequence[OutgoingRecord] = (),
    ) -> bool:
        """Reset a dead event for another run, atomically with queueing ``republish``.

        Only an event in state ``dead`` is touched: it becomes ``pending`` with its attempt
        count at zero (``fresh`` also deletes its steps), its open dead letters become
        ``redriven``, and ``republish`` goes to the outbox. Returns False, changing nothing,
        for any other state (a completed event stays completed).
        """
        ...

    async def discard(self, agent: str, event_id: str) -> bool:
        """Close an event's open dead letters as ``discarded``; return whether any was open."""
        ...


class Retention(Protocol):
    """Deleting finished history."""

    async def prune(self, *, before: float) -> dict[str, int]:
        """Delete finished history older than ``before`` (wall-clock seconds).

        Deleted: completed events (with their steps, failures and outbox rows) completed before
        ``before`` whose outbox rows are all published; closed dead letters (``resolved``,
        ``superseded``, ``discarded``) and shadow runs created before ``before``. Never
        deleted: dead, pending or claimed events, open dead letters, parked events. Blobs are
        deleted once unused since ``before`` and referenced by no remaining step. Callers
        choose ``before`` at or beyond the broker's retention horizon, so every event a broker
        can still redeliver is still recognised. Returns rows deleted per table.
        """
        ...


class ShadowRuns(Protocol):
    """Results of shadow re-evaluation runs, kept apart from live state."""

    async def save_shadow_run(self, run: ShadowRun) -> None:
        """Insert or update a shadow run's header."""
        ...

    async def write_shadow_results(self, results: Sequence[ShadowResult]) -> None:
        """Store per-event shadow results (insert or replace)."""
        ...

    async def shadow_runs(self, *, run_id: str | None = None, limit: int = 100) -> list[ShadowRun]:
        """Shadow runs, newest first."""
        ...

    async def shadow_results(self, run_id: str) -> list[ShadowResult]:
        """A shadow run's per-event results, in the order they were written."""
        ...


@runtime_checkable
class Store(EventJournal, OutboxQueue, OperatorTools, Retention, ShadowRuns, Protocol):
    """The journal: durable event states, steps, effects, outbox and dead letters.

    All methods are coroutines and never block the event loop.
    """

    async def open(self) -> None:
        """Connect and create or migrate the schema."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
