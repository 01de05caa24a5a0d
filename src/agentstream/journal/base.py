"""The journal's Store protocol and the records it speaks.

The journal is the source of truth for everything the runtime promises:

* a per-event state machine, ``pending -> claimed -> completed | dead``, with an atomic claim that
  carries a lease and a fencing **epoch** (bumped on every grant, so a zombie's late writes, made
  under an old epoch, are rejected with :class:`~agentstream.failures.FencedError`);
* durable attempt counts (every claim is an attempt, so crash loops end);
* steps keyed by ``(agent, event identity, seq)`` with a request fingerprint and recorded result;
* effect intents (``started`` before the call, ``done`` after, ``unknown`` when unreconcilable);
* the outbox (outputs and dead-letter records written in the same transaction as the state
  change that produced them) and dead-letter envelopes;
* content-addressed blobs: large parts of LLM requests (system prompts, earlier turns of a
  conversation, tool schemas) stored once under their SHA-256 and referenced from step requests
  as ``{"$blob": "sha256:..."}`` (see :mod:`agentstream.llm.transcripts`), so a transcript that
  grows call by call, or a prompt shared by every event, is not stored again and again;
* operations: redrive and discard of dead letters, parking of later events of a key behind its
  dead letter (``ordering="strict"``), shadow-run results, and retention (prune).

Dead-letter statuses: ``dead`` (open), ``redriven`` (the event was reset and re-published, not
yet completed), ``resolved`` (the redriven event completed), ``superseded`` (the redriven event
was dead-lettered again: a newer row is open), ``discarded`` (closed by an operator). A key of an
agent is **blocked** while it has a dead letter that is ``dead`` or ``redriven``; under strict
ordering, later events of a blocked key, and of a key that still has parked events, are parked.

Every backend (SQLite, PostgreSQL) implements :class:`Store` and passes the same conformance
suite in ``tests/conformance``.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentstream.event import Message, OutgoingRecord
from agentstream.failures import FencedError

BLOB_REF = "$blob"
"""Key of a blob reference, ``{"$blob": "sha256:..."}``, in a journaled LLM step's request."""


def blob_refs(value: Any, found: set[str] | None = None) -> set[str]:
    """Every blob digest referenced anywhere in a JSON value (a step request)."""
    found = set() if found is None else found
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(BLOB_REF), str):
            found.add(value[BLOB_REF])
        else:
            for item in value.values():
                blob_refs(item, found)
    elif isinstance(value, list):
        for item in value:
            blob_refs(item, found)
    return found


class EventState(enum.StrEnum):
    """Where an event is in its lifecycle."""

    PENDING = "pending"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    DEAD = "dead"


class ClaimStatus(enum.StrEnum):
    """The answer to a claim."""

    CLAIMED = "claimed"
    """The caller now owns the event under a new epoch and must process it."""
    COMPLETED = "completed"
    """The event is done; do not run the agent, acknowledge the delivery."""
    DEAD = "dead"
    """The event was dead-lettered; acknowledge the delivery."""
    BUSY = "busy"
    """Someone else holds a live lease, or a retry backoff is running; try again later."""


class StepKind(enum.StrEnum):
    """What a journaled step records."""

    LLM = "llm"
    STEP = "step"
    EFFECT = "effect"


class StepStatus(enum.StrEnum):
    """State of a journaled step."""

    DONE = "done"
    STARTED = "started"
    """Effects only: the intent is recorded, the result is not (yet)."""
    UNKNOWN = "unknown"
    """Effects only: started, never finished, and nothing could reconcile it."""


@dataclass(frozen=True, slots=True)
class EventMeta:
    """Where an event came from, recorded at its first claim."""

    key: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    input_hash: str
    group_id: str
    identity_source: str = "header"
    message: Message | None = None
    """The source message (key, value and headers are journaled for replay and inspection)."""


class RedriveMode(enum.StrEnum):
    """How a redrive resets a dead event."""

    RESUME = "resume"
    """Keep the recorded steps: the next attempt replays them and continues after the last."""
    FRESH = "fresh"
    """Forget the recorded steps: the next attempt starts over (same identity, same keys)."""


class DeadLetterStatus(enum.StrEnum):
    """Where a dead letter is in its life (see the module docstring)."""

    DEAD = "dead"
    REDRIVEN = "redriven"
    RESOLVED = "resolved"
    SUPERSEDED = "superseded"
    DISCARDED = "discarded"


BLOCKING_STATUSES: tuple[str, ...] = (DeadLetterStatus.DEAD, DeadLetterStatus.REDRIVEN)
"""Dead-letter statuses that hold back later events of the key under strict ordering."""


@dataclass(slots=True)
class StepRecord:
    """One journaled step of an event.

    Attributes:
        seq: Position of the step within the event's execution, from 0.
        kind: LLM call, plain step or effect.
        name: The step's name as the agent gave it.
        fingerprint: SHA-256 of the step's request (name, model, parameters, prompt, tools...).
        status: ``done``; for effects also ``started`` or ``unknown``.
        request: JSON-able request as recorded (for inspection, replay and dead letters).
        result: JSON-able recorded result.
        idempotency_key: The key an effect passed downstream.
        meta: Model, usage, cost, latency, prompt version and the like.
        epoch: The claim epoch under which it was written.
        started_at: Wall-clock seconds when the step started.
        finished_at: Wall-clock seconds when its result was recorded.
    """

    seq: int
    kind: StepKind
    name: str
    fingerprint: str
    status: StepStatus
    request: Any = None
    result: Any = None
    idempotency_key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    started_at: float = 0.0
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The result of :meth:`Store.claim`.

    Attributes:
        status: What the caller must do.
        epoch: The fencing epoch granted (CLAIMED) or current.
        attempts: Processing attempts so far, this one included when CLAIMED.
        lease_until: When the current lease (or retry backoff) ends, wall-clock seconds.
        steps: The recorded steps, when CLAIMED (resume from them).
    """

    status: ClaimStatus
    epoch: int
    attempts: int
    lease_until: float = 0.0
    steps: tuple[StepRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """One failed attempt, kept for backoff decisions and dead-letter envelopes."""

    attempt: int
    failure_class: str
    error_type: str
    message: str
    traceback: str = ""
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event's journal row, for inspection."""

    agent: str
    event_id: str
    state: EventState
    epoch: int
    owner: str | None
    lease_until: float
    attempts: int
    deliveries: int
    key: str | None
    topic: str | None
    partition: int | None
    offset: int | None
    timestamp_ms: int | None
    input_hash: str | None
    group_id: str | None
    outcome: str | None
    result: Any
    created_at: float
    updated_at: float
    completed_at: float | None
    identity_source: str | None = None
    message: Message | None = None
    """The source message as journaled at the first claim (None for rows from before)."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A record waiting for (or past) publication."""

    id: int
    agent: str
    event_id: str
    seq: int
    record: OutgoingRecord
    published_at: float | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A dead letter as stored in the journal."""

    id: int
    agent: str
    event_id: str
    failure_class: str
    key: str | None
    created_at: float
    status: str
    envelope: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    """An event held behind its key's dead letter (strict ordering), with its message."""

    id: int
    agent: str
    event_id: str
    key: str
    message: Message
    created_at: float


@dataclass(frozen=True, slots=True)
class ShadowRun:
    """A shadow re-evaluation run: a candidate agent against recorded events.

    Attributes:
        run_id: The run's id (results are stored under it, never in live state).
        agent: The live agent whose events were replayed.
        candidate: The candidate app and agent, as given on the command line.
        created_at: When the run started, wall-clock seconds.
        finished_at: When it ended, if it has.
        summary: Divergence rate, cost delta and the like.
    """

    run_id: str
    agent: str
    candidate: str
    created_at: float
    finished_at: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShadowResult:
    """One event's result in a shadow run (its divergence report entry)."""

    run_id: str
    event_id: str
    report: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Completion:
    """What :meth:`Store.complete` writes in one transaction.

    Attributes:
        outputs: Records to publish through the outbox.
        result: JSON-able summary of the agent's return value.
        outcome: ``ok``, or ``stale`` when the event was skipped as an old version.
        entity: Entity whose version the event applied, if versions are tracked.
        version: That version.
    """

    outputs: Sequence[OutgoingRecord] = ()
    result: Any = None
    outcome: str = "ok"
    entity: str | None = None
    version: int | None = None


class EventJournal(Protocol):
    """The part of the journal that processing one event uses (executor and context).

    :class:`Store` has all of it; replay implements only this, over recorded data, so a
    replayed event runs through the live executor without touching live state.
    """

    async def claim(
        self, agent: str, event_id: str, *, owner: str, lease_s: float, meta: EventMeta
    ) -> Claim:
        """See :meth:`Store.claim`."""
        ...

    async def claim_many(
        self,
        agent: str,
        requests: Sequence[tuple[str, EventMeta]],
        *,
        owner: str,
        lease_s: float,
    ) -> list[Claim]:
        """See :meth:`Store.claim_many`."""
        ...

    async def complete_many(
        self, agent: str, items: Sequence[tuple[str, int, Completion]]
    ) -> list[FencedError | None]:
        """See :meth:`Store.complete_many`."""
        ...

    async def release(
        self, agent: str, event_id: str, epoch: int, *, not_before: float = 0.0
    ) -> None:
        """See :meth:`Store.release`."""
        ...

    async def write_step(self, agent: str, event_id: str, epoch: int, step: StepRecord) -> None:
        """See :meth:`Store.write_step`."""
        ...

    async def complete(self, agent: str, event_id: str, epoch: int, completion: Completion) -> None:
        """See :meth:`Store.complete`."""
        ...

    async def record_failure(
        self, agent: str, event_id: str, epoch: int, failure: FailureRecord
    ) -> None:
        """See :meth:`Store.record_failure`."""
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
        """See :meth:`Store.dead_letter`."""
        ...

    async def applied_version(self, agent: str, entity: str) -> int | None:
        """See :meth:`Store.applied_version`."""
        ...

    async def steps(self, agent: str, event_id: str) -> list[StepRecord]:
        """See :meth:`Store.steps`."""
        ...

    async def failures(self, agent: str, event_id: str) -> list[FailureRecord]:
        """See :meth:`Store.failures`."""
        ...

    async def park(self, agent: str, event_id: str, key: str, message: Message) -> bool:
        """See :meth:`Store.park`."""
        ...

    async def blocked_by(self, agent: str, key: str) -> str | None:
        """See :meth:`Store.blocked_by`."""
        ...

    async def unpark(self, agent: str, parked_id: int) -> None:
        """See :meth:`Store.unpark`."""
        ...

    async def put_blobs(self, blobs: Mapping[str, str]) -> None:
        """See :meth:`Store.put_blobs`."""
        ...

    async def get_blobs(self, digests: Collection[str]) -> dict[str, str]:
        """See :meth:`Store.get_blobs`."""
        ...


@runtime_checkable
class Store(Protocol):
    """The journal: durable event states, steps, effects, outbox and dead letters.

    All methods are coroutines and never block the event loop. Writes that carry an ``epoch``
    raise :class:`~agentstream.failures.FencedError` when the event's current epoch differs or
    it is no longer claimed.
    """

    async def open(self) -> None:
        """Connect and create or migrate the schema."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

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
        """Extend the leases of ``(event_id, epoch)`` claims; return the ids whose claim is lost."""
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

    async def steps(self, agent: str, event_id: str) -> list[StepRecord]:
        """An event's steps in order."""
        ...

    async def failures(self, agent: str, event_id: str) -> list[FailureRecord]:
        """An event's failed attempts in order."""
        ...

    async def outbox(self, agent: str, event_id: str) -> list[OutboxRow]:
        """An event's outbox rows in order."""
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

    async def blocked_by(self, agent: str, key: str) -> str | None:
        """The event whose dead letter blocks ``key`` (``dead`` or ``redriven``), if any."""
        ...

    async def park(self, agent: str, event_id: str, key: str, message: Message) -> bool:
        """Park an event if its key is blocked by another event or already has parked events.

        Atomic with respect to :meth:`redrive`, :meth:`discard` and other parks. Parking the
        same event twice keeps one row. Returns whether the event is parked.
        """
        ...

    async def parked(
        self, agent: str, *, key: str | None = None, releasable: bool = False, limit: int = 1000
    ) -> list[ParkedRecord]:
        """Parked events in arrival order; ``releasable`` keeps only keys no longer blocked."""
        ...

    async def unpark(self, agent: str, parked_id: int) -> None:
        """Forget a parked event (it has been processed)."""
        ...

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

    async def counts(self, agent: str | None = None) -> dict[str, int]:
        """Events per state, plus dead_letters, dead_letters_open, parked and outbox_pending."""
        ...

    async def put_blobs(self, blobs: Mapping[str, str]) -> None:
        """Store content-addressed texts by digest; a digest already stored is left as it is."""
        ...

    async def get_blobs(self, digests: Collection[str]) -> dict[str, str]:
        """The stored texts among ``digests`` (unknown digests are absent from the result)."""
        ...
