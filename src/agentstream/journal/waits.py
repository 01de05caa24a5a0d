"""Waiting events and signals in the journal: the records, the decisions and the protocol.

An event whose handler reaches an unsatisfied ``ctx.wait_for`` or ``ctx.sleep`` is
**suspended**: in one transaction its wait step is written ``started`` (with its deadline), its
state becomes ``waiting``, its claim and lease are released, and a row in ``as_waits`` says what
it waits for and until when. It holds no task, no lease and no memory; its delivery is
acknowledged, so the partition offset moves past it. Under strict ordering (and
``hold_key_while_waiting``) the row also holds the event's key: later events of the key are
parked behind it, as behind a dead letter.

A waiting event's ``lease_until`` is the time it is **due**: its deadline, or now once a signal
it waits for has arrived (never, ``None`` deadline and no signal, is stored as a far future). A
claim of a waiting event that is not due answers ``waiting`` (acknowledge the delivery); a due
one is granted like a pending event. The worker's wake-up loop claims due events, and events
it woke whose claim lapsed (a crash after the wake-up), whichever worker is alive.

Signals are rows of ``as_signals``, unique per ``(agent, event_id, signal_id)``, so a signal
delivered twice counts once. A signal that arrives before its wait is kept (``pending``) and
taken when the wait is reached; taking it writes the wait step ``done`` with the signal's data
and marks the signal ``consumed``, in one transaction fenced by the claim's epoch. A signal for
a finished (completed or dead) event is recorded ``rejected`` and reported.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from agentstream.event import Message
from agentstream.journal.records import EventState, StepKind, StepRecord

NEVER = 1e18
"""The due time of a wait with no deadline whose signal has not arrived."""

WAIT_TIMER = "timer"
WAIT_SIGNAL = "signal"


class SignalStatus(enum.StrEnum):
    """What became of a signal sent to an event."""

    DELIVERED = "delivered"
    """The event waits for it: it is due and resumes."""
    KEPT = "kept"
    """The event is running, or waits for something else: the signal waits for its wait."""
    UNKNOWN_EVENT = "unknown_event"
    """The journal has no such event (yet): the signal is kept in case it arrives."""
    DUPLICATE = "duplicate"
    """A signal with this id was received before; nothing changed."""
    REJECTED = "rejected"
    """The event is finished (completed or dead); the signal is recorded, never applied."""


@dataclass(frozen=True, slots=True)
class SignalReceipt:
    """The journal's answer to a signal.

    Attributes:
        status: What became of it.
        signal_id: Its id (given, or derived from its name and data).
        event_state: The event's state when the signal arrived (None: unknown event).
    """

    status: SignalStatus
    signal_id: str
    event_state: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether the signal is (or was already) applied or kept for the event."""
        return self.status not in (SignalStatus.REJECTED,)


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """A signal as stored in the journal."""

    id: int
    agent: str
    event_id: str
    name: str
    signal_id: str
    data: Any
    received_at: float
    status: str
    consumed_at: float | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    """What a suspended event waits for (written by :meth:`WaitJournal.suspend`).

    Attributes:
        kind: ``signal`` (``ctx.wait_for``) or ``timer`` (``ctx.sleep``).
        name: The signal's name (for a timer: the step's name).
        seq: Position of the wait step.
        deadline: When the wait ends without a signal (None: never).
        since: When the wait began (its first suspension), wall-clock seconds.
        holds_key: Whether later events of the key are parked behind it.
    """

    kind: str
    name: str
    seq: int
    deadline: float | None
    since: float
    holds_key: bool = False


@dataclass(frozen=True, slots=True)
class WaitingEvent:
    """A waiting event's row, for the wake-up loop and inspection.

    Attributes:
        agent: The agent.
        event_id: The event's identity.
        key: Its ordering key.
        wait: What it waits for.
        due_at: When it is due (:data:`NEVER` when only a signal can wake it).
        state: The event's state (``waiting``, or ``claimed``/``pending`` once woken).
        message: The source message journaled at its first claim.
    """

    agent: str
    event_id: str
    key: str | None
    wait: Wait
    due_at: float
    state: EventState
    message: Message | None


def signal_result(signal: SignalRecord) -> dict[str, Any]:
    """The recorded result of a wait step answered by ``signal``."""
    return {"signal_id": signal.signal_id, "data": signal.data, "received_at": signal.received_at}


def decide_signal(state: EventState | None, *, duplicate: bool, waits_for_it: bool) -> SignalStatus:
    """What a signal does, given the event's state (None: unknown) and its wait."""
    if duplicate:
        return SignalStatus.DUPLICATE
    if state is None:
        return SignalStatus.UNKNOWN_EVENT
    if state in (EventState.COMPLETED, EventState.DEAD):
        return SignalStatus.REJECTED
    return SignalStatus.DELIVERED if waits_for_it else SignalStatus.KEPT


def due_time(deadline: float | None, *, signalled: bool, now: float) -> float:
    """When a suspended event is due: now if its signal is here, else its deadline (or never)."""
    if signalled:
        return now
    return NEVER if deadline is None else deadline


@runtime_checkable
class WaitJournal(Protocol):
    """The journal's part of waiting: suspend, signal, take a signal, find due events."""

    async def suspend(
        self, agent: str, event_id: str, epoch: int, wait: Wait, step: StepRecord, key: str | None
    ) -> None:
        """Write the wait step ``started``, set the event ``waiting`` and release its claim.

        Atomic and fenced by ``epoch``. When a signal the wait takes is already pending, the
        event is due at once. Its attempt count restarts (a suspension is progress).
        """
        ...

    async def take_signal(
        self,
        agent: str,
        event_id: str,
        epoch: int,
        name: str,
        step: StepRecord,
        check: Callable[[Any], str | None],
    ) -> SignalRecord | None:
        """Consume the oldest pending signal ``name`` of the event and record ``step`` done.

        ``step.result`` is set to :func:`signal_result`. A pending signal whose data ``check``
        refuses (it returns the reason) is marked ``rejected`` and the next one is tried.
        Atomic and fenced by ``epoch``; None (nothing written) when no acceptable signal is
        pending.
        """
        ...

    async def signal(
        self, agent: str, event_id: str, name: str, data: Any, *, signal_id: str
    ) -> SignalReceipt:
        """Record a signal for an event once per ``signal_id``; wake the event if it waits."""
        ...

    async def due_waits(self, agent: str, *, limit: int) -> list[WaitingEvent]:
        """Waiting events that are due, and woken ones whose claim lapsed, oldest due first."""
        ...

    async def waiting(
        self, agent: str | None = None, *, limit: int | None = 100
    ) -> list[WaitingEvent]:
        """Events that are waiting (state ``waiting``), longest waiting first."""
        ...

    async def waiting_count(self, agent: str) -> int:
        """How many events of ``agent`` are waiting."""
        ...

    async def signals(self, agent: str, event_id: str) -> list[SignalRecord]:
        """An event's signals in arrival order (pending, consumed and rejected)."""
        ...


def waits_of(steps: Sequence[StepRecord]) -> list[StepRecord]:
    """The wait and sleep steps among an event's steps."""
    return [s for s in steps if s.kind in (StepKind.WAIT, StepKind.SLEEP)]
