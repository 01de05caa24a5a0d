"""The writes of waiting events, as the SQL backends see them: one input value per write.

:class:`WaitWrites` implements the :class:`~agentstream.journal.waits.WaitJournal` writes
(suspend, take a signal, signal) once: it reads the clock, shapes the request into one frozen
input (:class:`Suspension`, :class:`SignalTake`, :class:`SignalWrite`) and hands it to the
backend, which runs the SQL in one transaction. What to write is decided here and in
:mod:`agentstream.journal.waits` (``due_time``, ``decide_signal``): which pending signal a wait
takes (:meth:`SignalTake.pick`), the ``as_waits`` row of a suspension, the ``as_signals`` row
of a signal. A backend reads the rows a decision needs, calls it, and writes what it says
(``journal/<backend>/waits.py``), as it does for :mod:`agentstream.journal.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentstream.journal.records import EventState, StepRecord
from agentstream.journal.rows import dumps, loads
from agentstream.journal.waits import (
    SignalReceipt,
    SignalRecord,
    SignalStatus,
    Wait,
    decide_signal,
    due_time,
    signal_result,
)

__all__ = ["SignalPick", "SignalTake", "SignalWrite", "Suspension", "WaitWrites"]


@dataclass(frozen=True, slots=True)
class Suspension:
    """An event suspended at ``wait`` under ``epoch``, its wait step written ``started``."""

    agent: str
    event_id: str
    epoch: int
    wait: Wait
    step: StepRecord
    key: str | None
    now: float

    def due(self, *, signalled: bool) -> float:
        """When the event is due (``signalled``: a signal its wait takes is pending)."""
        return due_time(self.wait.deadline, signalled=signalled, now=self.now)

    def wait_row(self, due: float) -> tuple[Any, ...]:
        """The ``as_waits`` row, with the event due at ``due``.

        Columns: agent, event_id, kind, name, seq, event_key, holds_key, since, deadline, due_at.
        """
        w = self.wait
        return (
            self.agent,
            self.event_id,
            w.kind,
            w.name,
            w.seq,
            self.key,
            int(w.holds_key),
            w.since,
            w.deadline,
            due,
        )


@dataclass(frozen=True, slots=True)
class SignalPick:
    """What a wait does with its pending signals.

    Attributes:
        refused: ``(row id, note)`` of the signals whose data the wait refused (to be marked
            ``rejected``), in arrival order.
        taken: The signal the wait takes (to be marked ``consumed``; the wait step's result
            is set from it), or None when no pending signal is acceptable.
    """

    refused: list[tuple[int, str]] = field(default_factory=list)
    taken: SignalRecord | None = None


@dataclass(frozen=True, slots=True)
class SignalTake:
    """A wait under ``epoch`` taking the oldest acceptable pending signal ``name``."""

    agent: str
    event_id: str
    epoch: int
    name: str
    step: StepRecord
    check: Callable[[Any], str | None]
    now: float

    def pick(self, pending: Sequence[Sequence[Any]]) -> SignalPick:
        """Decide which signal the wait takes, and set the wait step's result from it.

        Args:
            pending: The event's pending signals ``name`` in arrival order, as rows of
                ``id, signal_id, data, received_at``.
        """
        refused: list[tuple[int, str]] = []
        for row_id, signal_id, data, received_at in pending:
            value = loads(data)
            note = self.check(value)
            if note is not None:
                refused.append((row_id, note[:2000]))
                continue
            signal = SignalRecord(
                row_id,
                self.agent,
                self.event_id,
                self.name,
                signal_id,
                value,
                received_at,
                "consumed",
                self.now,
            )
            self.step.result = signal_result(signal)
            return SignalPick(refused, signal)
        return SignalPick(refused)


@dataclass(frozen=True, slots=True)
class SignalWrite:
    """A signal ``name`` for an event, recorded once per ``signal_id``."""

    agent: str
    event_id: str
    name: str
    data: Any
    signal_id: str
    now: float

    def decide(self, state: EventState | None, *, duplicate: bool, waits: bool) -> SignalStatus:
        """What the signal does (:func:`~agentstream.journal.waits.decide_signal`).

        Args:
            state: The event's state (None: the journal does not know it).
            duplicate: A signal with this id was received before.
            waits: The event has a wait for ``name``.
        """
        return decide_signal(
            state, duplicate=duplicate, waits_for_it=state == EventState.WAITING and waits
        )

    def signal_row(self, status: SignalStatus, state: EventState | None) -> tuple[Any, ...]:
        """The ``as_signals`` row: ``rejected`` for a finished event, else ``pending``.

        Columns: agent, event_id, name, signal_id, data, received_at, status, note.
        """
        rejected = status == SignalStatus.REJECTED
        return (
            self.agent,
            self.event_id,
            self.name,
            self.signal_id,
            dumps(self.data),
            self.now,
            "rejected" if rejected else "pending",
            f"event is {state}" if rejected else None,
        )

    def receipt(self, status: SignalStatus, state: EventState | None) -> SignalReceipt:
        """The answer to the sender."""
        return SignalReceipt(status, self.signal_id, None if state is None else str(state))


class WaitWrites:
    """The wait writes of a SQL journal; a backend supplies the three ``write_*`` methods."""

    _clock: Callable[[], float]

    async def write_suspension(self, s: Suspension) -> None:
        """Write the wait step and the wait, set the event ``waiting``, release its claim."""
        raise NotImplementedError

    async def write_signal_take(self, t: SignalTake) -> SignalRecord | None:
        """Apply :meth:`SignalTake.pick` to the pending signals, fenced by the claim."""
        raise NotImplementedError

    async def write_signal(self, w: SignalWrite) -> SignalReceipt:
        """Record the signal as :meth:`SignalWrite.decide` says; make its event due."""
        raise NotImplementedError

    async def suspend(
        self, agent: str, event_id: str, epoch: int, wait: Wait, step: StepRecord, key: str | None
    ) -> None:
        """Write the wait step, set the event ``waiting`` and release its claim, atomically."""
        await self.write_suspension(
            Suspension(agent, event_id, epoch, wait, step, key, self._clock())
        )

    async def take_signal(
        self,
        agent: str,
        event_id: str,
        epoch: int,
        name: str,
        step: StepRecord,
        check: Callable[[Any], str | None],
    ) -> SignalRecord | None:
        """Consume the oldest acceptable pending signal and record the wait step, atomically."""
        take = SignalTake(agent, event_id, epoch, name, step, check, self._clock())
        return await self.write_signal_take(take)

    async def signal(
        self, agent: str, event_id: str, name: str, data: Any, *, signal_id: str
    ) -> SignalReceipt:
        """Record a signal once per id; make its waiting event due."""
        return await self.write_signal(
            SignalWrite(agent, event_id, name, data, signal_id, self._clock())
        )
