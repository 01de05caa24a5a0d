"""The PostgreSQL journal's writes for waiting events: suspend, signal, take a signal.

A base class of :class:`~agentstream.journal.postgres.PostgresStore` under
:class:`~agentstream.journal.wait_writes.WaitWrites`, which decides what to write. Each method
is one transaction that first locks the event's row (``SELECT ... FOR UPDATE``), so a signal and a
suspension of the same event serialize: a signal that lands while the event suspends is seen
by the suspension (the event is due at once) or finds the event waiting (and makes it due).
A suspension that holds its key also takes the key's parking lock, as parking does. See
:mod:`agentstream.journal.waits` for the model.
"""

from __future__ import annotations

from typing import Any

from agentstream.journal import lifecycle
from agentstream.journal.postgres.database import Conn
from agentstream.journal.postgres.operations import PostgresOperations
from agentstream.journal.records import EventState
from agentstream.journal.rows import STEP_COLUMNS, step_values
from agentstream.journal.wait_writes import SignalTake, SignalWrite, Suspension
from agentstream.journal.waits import WAIT_SIGNAL, SignalReceipt, SignalRecord, SignalStatus

__all__ = ["PostgresWaits"]

_UPSERT_STEP = (
    f"INSERT INTO {{s}}.as_steps (agent, event_id, {STEP_COLUMNS}) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (agent, event_id, seq) DO UPDATE SET "
    + ", ".join(f"{c.strip()} = EXCLUDED.{c.strip()}" for c in STEP_COLUMNS.split(",")[1:])
)
_PENDING = (
    "SELECT id, signal_id, data, received_at FROM {s}.as_signals WHERE agent = %s "
    "AND event_id = %s AND name = %s AND status = 'pending' ORDER BY id"
)


class PostgresWaits(PostgresOperations):
    """Suspend, signal and take-a-signal writes of the PostgreSQL journal."""

    async def _lock_event(self, conn: Conn, agent: str, event_id: str) -> tuple[Any, ...] | None:
        cur = await conn.execute(
            self.q(
                "SELECT state, epoch FROM {s}.as_events WHERE agent = %s AND event_id = %s "
                "FOR UPDATE"
            ),
            (agent, event_id),
        )
        return await cur.fetchone()

    async def _lock_claim(self, conn: Conn, agent: str, event_id: str, epoch: int) -> None:
        row = await self._lock_event(conn, agent, event_id)
        if row is None or row[0] != EventState.CLAIMED or row[1] != epoch:
            raise lifecycle.fenced(agent, event_id, epoch)

    async def write_suspension(self, s: Suspension) -> None:
        """Write the wait step, set the event ``waiting`` and release its claim, atomically."""

        async def op(conn: Conn) -> None:
            async with conn.transaction():
                if s.wait.holds_key:
                    await self.lock_key(conn, s.agent, s.key)
                await self._lock_claim(conn, s.agent, s.event_id, s.epoch)
                cur = await conn.execute(self.q(_PENDING), (s.agent, s.event_id, s.wait.name))
                due = s.due(signalled=s.wait.kind == WAIT_SIGNAL and bool(await cur.fetchall()))
                await conn.execute(
                    self.q(
                        "UPDATE {s}.as_events SET state = 'waiting', owner = NULL, "
                        "lease_until = %s, attempts = 0, updated_at = %s WHERE agent = %s "
                        "AND event_id = %s"
                    ),
                    (due, s.now, s.agent, s.event_id),
                )
                await conn.execute(
                    self.q(_UPSERT_STEP), step_values(s.agent, s.event_id, s.epoch, s.step)
                )
                await conn.execute(
                    self.q(
                        "INSERT INTO {s}.as_waits (agent, event_id, kind, name, seq, event_key, "
                        "holds_key, since, deadline, due_at) VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (agent, event_id) "
                        "DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, "
                        "seq = EXCLUDED.seq, event_key = EXCLUDED.event_key, "
                        "holds_key = EXCLUDED.holds_key, since = EXCLUDED.since, "
                        "deadline = EXCLUDED.deadline, due_at = EXCLUDED.due_at"
                    ),
                    s.wait_row(due),
                )

        await self.run(op)

    async def write_signal_take(self, t: SignalTake) -> SignalRecord | None:
        """Consume the oldest acceptable pending signal and record the wait step, atomically."""

        async def op(conn: Conn) -> SignalRecord | None:
            async with conn.transaction():
                await self._lock_claim(conn, t.agent, t.event_id, t.epoch)
                cur = await conn.execute(self.q(_PENDING), (t.agent, t.event_id, t.name))
                pick = t.pick(await cur.fetchall())
                for row_id, note in pick.refused:
                    await conn.execute(
                        self.q(
                            "UPDATE {s}.as_signals SET status = 'rejected', note = %s WHERE id = %s"
                        ),
                        (note, row_id),
                    )
                if pick.taken is not None:
                    await conn.execute(
                        self.q(
                            "UPDATE {s}.as_signals SET status = 'consumed', consumed_at = %s "
                            "WHERE id = %s"
                        ),
                        (t.now, pick.taken.id),
                    )
                    await conn.execute(
                        self.q(_UPSERT_STEP), step_values(t.agent, t.event_id, t.epoch, t.step)
                    )
                return pick.taken

        return await self.run(op)

    async def write_signal(self, w: SignalWrite) -> SignalReceipt:
        """Record a signal once per id; make its waiting event due."""

        async def op(conn: Conn) -> SignalReceipt:
            async with conn.transaction():
                row = await self._lock_event(conn, w.agent, w.event_id)
                state = None if row is None else EventState(row[0])
                cur = await conn.execute(
                    self.q(
                        "SELECT 1 FROM {s}.as_signals WHERE agent = %s AND event_id = %s "
                        "AND signal_id = %s"
                    ),
                    (w.agent, w.event_id, w.signal_id),
                )
                duplicate = await cur.fetchone() is not None
                cur = await conn.execute(
                    self.q(
                        "SELECT 1 FROM {s}.as_waits WHERE agent = %s AND event_id = %s "
                        "AND kind = %s AND name = %s"
                    ),
                    (w.agent, w.event_id, WAIT_SIGNAL, w.name),
                )
                waits = await cur.fetchone() is not None
                status = w.decide(state, duplicate=duplicate, waits=waits)
                if status != SignalStatus.DUPLICATE:
                    # ON CONFLICT: two senders of one signal id at once on an unknown event
                    await conn.execute(
                        self.q(
                            "INSERT INTO {s}.as_signals (agent, event_id, name, signal_id, data, "
                            "received_at, status, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                            "ON CONFLICT (agent, event_id, signal_id) DO NOTHING"
                        ),
                        w.signal_row(status, state),
                    )
                if status == SignalStatus.DELIVERED:
                    await conn.execute(
                        self.q(
                            "UPDATE {s}.as_events SET lease_until = %s WHERE agent = %s "
                            "AND event_id = %s AND state = 'waiting'"
                        ),
                        (w.now, w.agent, w.event_id),
                    )
                    await conn.execute(
                        self.q(
                            "UPDATE {s}.as_waits SET due_at = %s WHERE agent = %s AND event_id = %s"
                        ),
                        (w.now, w.agent, w.event_id),
                    )
                return w.receipt(status, state)

        return await self.run(op)
