"""The SQLite journal's writes for waiting events: suspend, signal, take a signal.

A mixin of :class:`~agentstream.journal.sqlite.SqliteStore` under
:class:`~agentstream.journal.wait_writes.WaitWrites`, which decides what to write; each method
is one write transaction on the database thread. See :mod:`agentstream.journal.waits` for the
model.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from agentstream.journal import lifecycle
from agentstream.journal.records import EventState
from agentstream.journal.rows import STEP_COLUMNS, step_values
from agentstream.journal.wait_writes import SignalTake, SignalWrite, Suspension
from agentstream.journal.waits import WAIT_SIGNAL, SignalReceipt, SignalRecord, SignalStatus
from agentstream.sqlite_db import SqliteDatabase

__all__ = ["SqliteWaits"]

_INSERT_STEP = (
    f"INSERT OR REPLACE INTO as_steps (agent, event_id, {STEP_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _pending(conn: sqlite3.Connection, agent: str, event_id: str, name: str) -> list[Any]:
    return conn.execute(
        "SELECT id, signal_id, data, received_at FROM as_signals WHERE agent = ? "
        "AND event_id = ? AND name = ? AND status = 'pending' ORDER BY id",
        (agent, event_id, name),
    ).fetchall()


class SqliteWaits:
    """Suspend, signal and take-a-signal writes of the SQLite journal (a mixin)."""

    db: SqliteDatabase

    async def write_suspension(self, s: Suspension) -> None:
        """Write the wait step, set the event ``waiting`` and release its claim, atomically."""

        def op(conn: sqlite3.Connection) -> None:
            wait = s.wait
            due = s.due(
                signalled=wait.kind == WAIT_SIGNAL
                and bool(_pending(conn, s.agent, s.event_id, wait.name))
            )
            cur = conn.execute(
                "UPDATE as_events SET state = 'waiting', owner = NULL, lease_until = ?, "
                "attempts = 0, updated_at = ? WHERE agent = ? AND event_id = ? AND epoch = ? "
                "AND state = 'claimed'",
                (due, s.now, s.agent, s.event_id, s.epoch),
            )
            if cur.rowcount != 1:
                raise lifecycle.fenced(s.agent, s.event_id, s.epoch)
            conn.execute(_INSERT_STEP, step_values(s.agent, s.event_id, s.epoch, s.step))
            conn.execute(
                "INSERT OR REPLACE INTO as_waits (agent, event_id, kind, name, seq, event_key, "
                "holds_key, since, deadline, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                s.wait_row(due),
            )

        await self.db.write(op)

    async def write_signal_take(self, t: SignalTake) -> SignalRecord | None:
        """Consume the oldest acceptable pending signal and record the wait step, atomically."""

        def op(conn: sqlite3.Connection) -> SignalRecord | None:
            found = conn.execute(
                "SELECT 1 FROM as_events WHERE agent = ? AND event_id = ? AND epoch = ? "
                "AND state = 'claimed'",
                (t.agent, t.event_id, t.epoch),
            ).fetchone()
            if found is None:
                raise lifecycle.fenced(t.agent, t.event_id, t.epoch)
            pick = t.pick(_pending(conn, t.agent, t.event_id, t.name))
            for row_id, note in pick.refused:
                conn.execute(
                    "UPDATE as_signals SET status = 'rejected', note = ? WHERE id = ?",
                    (note, row_id),
                )
            if pick.taken is not None:
                conn.execute(
                    "UPDATE as_signals SET status = 'consumed', consumed_at = ? WHERE id = ?",
                    (t.now, pick.taken.id),
                )
                conn.execute(_INSERT_STEP, step_values(t.agent, t.event_id, t.epoch, t.step))
            return pick.taken

        return await self.db.write(op)

    async def write_signal(self, w: SignalWrite) -> SignalReceipt:
        """Record a signal once per id; make its waiting event due."""

        def op(conn: sqlite3.Connection) -> SignalReceipt:
            row = conn.execute(
                "SELECT state FROM as_events WHERE agent = ? AND event_id = ?",
                (w.agent, w.event_id),
            ).fetchone()
            state = None if row is None else EventState(row[0])
            duplicate = conn.execute(
                "SELECT 1 FROM as_signals WHERE agent = ? AND event_id = ? AND signal_id = ?",
                (w.agent, w.event_id, w.signal_id),
            ).fetchone()
            waits = conn.execute(
                "SELECT 1 FROM as_waits WHERE agent = ? AND event_id = ? AND kind = ? AND name = ?",
                (w.agent, w.event_id, WAIT_SIGNAL, w.name),
            ).fetchone()
            status = w.decide(state, duplicate=duplicate is not None, waits=waits is not None)
            if status != SignalStatus.DUPLICATE:
                conn.execute(
                    "INSERT INTO as_signals (agent, event_id, name, signal_id, data, "
                    "received_at, status, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    w.signal_row(status, state),
                )
            if status == SignalStatus.DELIVERED:
                conn.execute(
                    "UPDATE as_events SET lease_until = ? WHERE agent = ? AND event_id = ? "
                    "AND state = 'waiting'",
                    (w.now, w.agent, w.event_id),
                )
                conn.execute(
                    "UPDATE as_waits SET due_at = ? WHERE agent = ? AND event_id = ?",
                    (w.now, w.agent, w.event_id),
                )
            return w.receipt(status, state)

        return await self.db.write(op)
