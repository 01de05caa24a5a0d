"""The records the journal speaks: event states, claims, steps, failures, outbox rows, dead letters.

Plain values, no behaviour: the decisions over them are in :mod:`agentstream.journal.lifecycle`,
the contract that reads and writes them in :mod:`agentstream.journal.store`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentstream.event import Message, OutgoingRecord


class EventState(enum.StrEnum):
    """Where an event is in its lifecycle."""

    PENDING = "pending"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    DEAD = "dead"
    WAITING = "waiting"
    """Suspended at a ``ctx.wait_for`` or ``ctx.sleep`` (see :mod:`agentstream.journal.waits`)."""


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
    WAITING = "waiting"
    """The event waits for a signal or a timer that is not due; acknowledge the delivery."""


class StepKind(enum.StrEnum):
    """What a journaled step records."""

    LLM = "llm"
    STEP = "step"
    EFFECT = "effect"
    WAIT = "wait"
    """``ctx.wait_for``: a signal's data, or a timeout."""
    SLEEP = "sleep"
    """``ctx.sleep``: a durable timer."""


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
