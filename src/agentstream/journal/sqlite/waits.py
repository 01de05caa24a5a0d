"""The SQLite journal's writes for waiting events: suspend, signal, take a signal.

A mixin of :class:`~agentstream.journal.sqlite.SqliteStore`; each method is one write
transaction on the database thread. See :mod:`agentstream.journal.waits` for the model.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from agentstream.journal import lifecycle
from agentstream.journal.records import EventState, StepRecord
from agentstream.journal.rows import STEP_COLUMNS, dumps, loads, step_values
from agentstream.journal.waits import (
    WAIT_SIGNAL,
    SignalReceipt,
    SignalRecord,
    SignalStatus,
    Wait,
    decide_signal,
    due_time,
    signal_result,
)
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
    _clock: Callable[[], float]

    async def suspend(
        self, agent: str, event_id: str, epoch: int, wait: Wait, step: StepRecord, key: str | None
    ) -> None:
        """Write the wait step, set the event ``waiting`` and release its claim, atomically."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> None:
            signalled = wait.kind == WAIT_SIGNAL and bool(
                _pending(conn, agent, event_id, wait.name)
            )
            due = due_time(wait.deadline, signalled=signalled, now=now)
            cur = conn.execute(
                "UPDATE as_events SET state = 'waiting', owner = NULL, lease_until = ?, "
                "attempts = 0, updated_at = ? WHERE agent = ? AND event_id = ? AND epoch = ? "
                "AND state = 'claimed'",
                (due, now, agent, event_id, epoch),
            )
            if cur.rowcount != 1:
                raise lifecycle.fenced(agent, event_id, epoch)
            conn.execute(_INSERT_STEP, step_values(agent, event_id, epoch, step))
            conn.execute(
                "INSERT OR REPLACE INTO as_waits (agent, event_id, kind, name, seq, event_key, "
                "holds_key, since, deadline, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    agent,
                    event_id,
                    wait.kind,
                    wait.name,
                    wait.seq,
                    key,
                    int(wait.holds_key),
                    wait.since,
                    wait.deadline,
                    due,
                ),
            )

        await self.db.write(op)

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
        now = self._clock()

        def op(conn: sqlite3.Connection) -> SignalRecord | None:
            found = conn.execute(
                "SELECT 1 FROM as_events WHERE agent = ? AND event_id = ? AND epoch = ? "
                "AND state = 'claimed'",
                (agent, event_id, epoch),
            ).fetchone()
            if found is None:
                raise lifecycle.fenced(agent, event_id, epoch)
            for row_id, signal_id, data, received_at in _pending(conn, agent, event_id, name):
                value = loads(data)
                refused = check(value)
                if refused is not None:
                    conn.execute(
                        "UPDATE as_signals SET status = 'rejected', note = ? WHERE id = ?",
                        (refused[:2000], row_id),
                    )
                    continue
                conn.execute(
                    "UPDATE as_signals SET status = 'consumed', consumed_at = ? WHERE id = ?",
                    (now, row_id),
                )
                signal = SignalRecord(
                    row_id, agent, event_id, name, signal_id, value, received_at, "consumed", now
                )
                step.result = signal_result(signal)
                conn.execute(_INSERT_STEP, step_values(agent, event_id, epoch, step))
                return signal
            return None

        return await self.db.write(op)

    async def signal(
        self, agent: str, event_id: str, name: str, data: Any, *, signal_id: str
    ) -> SignalReceipt:
        """Record a signal once per id; make its waiting event due."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> SignalReceipt:
            row = conn.execute(
                "SELECT state FROM as_events WHERE agent = ? AND event_id = ?", (agent, event_id)
            ).fetchone()
            state = None if row is None else EventState(row[0])
            duplicate = conn.execute(
                "SELECT 1 FROM as_signals WHERE agent = ? AND event_id = ? AND signal_id = ?",
                (agent, event_id, signal_id),
            ).fetchone()
            waits = conn.execute(
                "SELECT 1 FROM as_waits WHERE agent = ? AND event_id = ? AND kind = ? AND name = ?",
                (agent, event_id, WAIT_SIGNAL, name),
            ).fetchone()
            status = decide_signal(
                state,
                duplicate=duplicate is not None,
                waits_for_it=state == EventState.WAITING and waits is not None,
            )
            if status != SignalStatus.DUPLICATE:
                stored = "rejected" if status == SignalStatus.REJECTED else "pending"
                conn.execute(
                    "INSERT INTO as_signals (agent, event_id, name, signal_id, data, "
                    "received_at, status, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        agent,
                        event_id,
                        name,
                        signal_id,
                        dumps(data),
                        now,
                        stored,
                        f"event is {state}" if status == SignalStatus.REJECTED else None,
                    ),
                )
            if status == SignalStatus.DELIVERED:
                conn.execute(
                    "UPDATE as_events SET lease_until = ? WHERE agent = ? AND event_id = ? "
                    "AND state = 'waiting'",
                    (now, agent, event_id),
                )
                conn.execute(
                    "UPDATE as_waits SET due_at = ? WHERE agent = ? AND event_id = ?",
                    (now, agent, event_id),
                )
            return SignalReceipt(status, signal_id, None if state is None else str(state))

        return await self.db.write(op)
