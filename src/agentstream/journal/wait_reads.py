"""Reads of waiting events and signals, written once for SQLite and PostgreSQL.

A mixin over :class:`~agentstream.journal.reads.JournalReads` (``select`` and ``prefix``); the
writes (suspend, signal, take a signal) are each backend's, in ``journal/<backend>/waits.py``.
See :mod:`agentstream.journal.waits` for the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentstream.event import Message, decode_headers
from agentstream.journal.reads import JournalReads
from agentstream.journal.records import EventState
from agentstream.journal.rows import loads, message_value, packed_refs
from agentstream.journal.waits import SignalRecord, Wait, WaitingEvent

__all__ = ["WAIT_COLUMNS", "WaitReads", "signal_from_row", "waiting_from_row"]

WAIT_COLUMNS = (
    "w.event_id, w.kind, w.name, w.seq, w.event_key, w.holds_key, w.since, w.deadline, "
    'w.due_at, e.state, e.topic, e.partition, e."offset", e.timestamp_ms, e.msg_key, '
    "e.msg_value, e.msg_headers, e.msg_packed"
)
SIGNAL_COLUMNS = "id, agent, event_id, name, signal_id, data, received_at, status, consumed_at"


def waiting_from_row(
    agent: str, r: Sequence[Any], blobs: Mapping[str, str] | None = None
) -> WaitingEvent:
    """A waiting event from a row of :data:`WAIT_COLUMNS` (``blobs``: see ``event_from_row``)."""
    message = None
    value = message_value(r[15], r[17], blobs or {})
    if r[16] is not None and r[10] is not None:  # headers, as in rows.event_from_row
        message = Message(
            topic=r[10],
            partition=r[11],
            offset=r[12],
            key=None if r[14] is None else bytes(r[14]),
            value=value,
            headers=decode_headers(r[16]),
            timestamp_ms=r[13] or 0,
        )
    wait = Wait(r[1], r[2], r[3], r[7], r[6], bool(r[5]))
    return WaitingEvent(agent, r[0], r[4], wait, r[8], EventState(r[9]), message)


def signal_from_row(r: Sequence[Any]) -> SignalRecord:
    """A signal from a row of ``SIGNAL_COLUMNS``."""
    return SignalRecord(r[0], r[1], r[2], r[3], r[4], loads(r[5]), r[6], r[7], r[8])


class WaitReads(JournalReads):
    """The read side of :class:`~agentstream.journal.waits.WaitJournal` (a mixin)."""

    _clock: Callable[[], float]

    async def due_waits(self, agent: str, *, limit: int) -> list[WaitingEvent]:
        """Waiting events that are due, and woken ones whose claim lapsed, oldest due first."""
        now = self._clock()
        p = self.prefix
        rows = await self.select(
            f"SELECT {WAIT_COLUMNS} FROM {p}as_waits w JOIN {p}as_events e "
            "ON e.agent = w.agent AND e.event_id = w.event_id "
            "WHERE w.agent = ? AND w.due_at <= ? AND e.lease_until <= ? "
            "AND e.state IN ('waiting', 'claimed', 'pending') ORDER BY w.due_at LIMIT ?",
            (agent, now, now, limit),
        )
        blobs = await self.blob_texts(packed_refs(rows, 17))
        return [waiting_from_row(agent, r, blobs) for r in rows]

    async def waiting(
        self, agent: str | None = None, *, limit: int | None = 100
    ) -> list[WaitingEvent]:
        """Events in state ``waiting``, longest waiting first."""
        p = self.prefix
        cond, args = ("", ()) if agent is None else ("AND w.agent = ? ", (agent,))
        sql = (
            f"SELECT w.agent, {WAIT_COLUMNS} FROM {p}as_waits w JOIN {p}as_events e "
            "ON e.agent = w.agent AND e.event_id = w.event_id "
            f"WHERE e.state = 'waiting' {cond}ORDER BY w.since"
        )
        if limit is not None:
            sql, args = sql + " LIMIT ?", (*args, limit)
        rows = await self.select(sql, args)
        blobs = await self.blob_texts(packed_refs(rows, 18))
        return [waiting_from_row(r[0], r[1:], blobs) for r in rows]

    async def waiting_count(self, agent: str) -> int:
        """How many events of ``agent`` are waiting."""
        rows = await self.select(
            f"SELECT COUNT(*) FROM {self.prefix}as_events WHERE agent = ? AND state = 'waiting'",
            (agent,),
        )
        return int(rows[0][0])

    async def signals(self, agent: str, event_id: str) -> list[SignalRecord]:
        """An event's signals in arrival order."""
        rows = await self.select(
            f"SELECT {SIGNAL_COLUMNS} FROM {self.prefix}as_signals WHERE agent = ? "
            "AND event_id = ? ORDER BY id",
            (agent, event_id),
        )
        return [signal_from_row(r) for r in rows]
