"""The PostgreSQL journal's writes for waiting events: suspend, signal, take a signal.

A base class of :class:`~agentstream.journal.postgres.PostgresStore`. Each method is one
transaction that first locks the event's row (``SELECT ... FOR UPDATE``), so a signal and a
suspension of the same event serialize: a signal that lands while the event suspends is seen
by the suspension (the event is due at once) or finds the event waiting (and makes it due).
A suspension that holds its key also takes the key's parking lock, as parking does. See
:mod:`agentstream.journal.waits` for the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentstream.journal import lifecycle
from agentstream.journal.postgres.database import Conn
from agentstream.journal.postgres.operations import PostgresOperations
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

    async def suspend(
        self, agent: str, event_id: str, epoch: int, wait: Wait, step: StepRecord, key: str | None
    ) -> None:
        """Write the wait step, set the event ``waiting`` and release its claim, atomically."""
        now = self._clock()

        async def op(conn: Conn) -> None:
            async with conn.transaction():
                if wait.holds_key:
                    await self.lock_key(conn, agent, key)
                await self._lock_claim(conn, agent, event_id, epoch)
                cur = await conn.execute(self.q(_PENDING), (agent, event_id, wait.name))
                signalled = wait.kind == WAIT_SIGNAL and bool(await cur.fetchall())
                due = due_time(wait.deadline, signalled=signalled, now=now)
                await conn.execute(
                    self.q(
                        "UPDATE {s}.as_events SET state = 'waiting', owner = NULL, "
                        "lease_until = %s, attempts = 0, updated_at = %s WHERE agent = %s "
                        "AND event_id = %s"
                    ),
                    (due, now, agent, event_id),
                )
                await conn.execute(self.q(_UPSERT_STEP), step_values(agent, event_id, epoch, step))
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

        await self.run(op)

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

        async def op(conn: Conn) -> SignalRecord | None:
            async with conn.transaction():
                await self._lock_claim(conn, agent, event_id, epoch)
                cur = await conn.execute(self.q(_PENDING), (agent, event_id, name))
                for row_id, signal_id, data, received_at in await cur.fetchall():
                    value = loads(data)
                    refused = check(value)
                    if refused is not None:
                        await conn.execute(
                            self.q(
                                "UPDATE {s}.as_signals SET status = 'rejected', note = %s "
                                "WHERE id = %s"
                            ),
                            (refused[:2000], row_id),
                        )
                        continue
                    await conn.execute(
                        self.q(
                            "UPDATE {s}.as_signals SET status = 'consumed', consumed_at = %s "
                            "WHERE id = %s"
                        ),
                        (now, row_id),
                    )
                    signal = SignalRecord(
                        row_id,
                        agent,
                        event_id,
                        name,
                        signal_id,
                        value,
                        received_at,
                        "consumed",
                        now,
                    )
                    step.result = signal_result(signal)
                    await conn.execute(
                        self.q(_UPSERT_STEP), step_values(agent, event_id, epoch, step)
                    )
                    return signal
                return None

        return await self.run(op)

    async def signal(
        self, agent: str, event_id: str, name: str, data: Any, *, signal_id: str
    ) -> SignalReceipt:
        """Record a signal once per id; make its waiting event due."""
        now = self._clock()

        async def op(conn: Conn) -> SignalReceipt:
            async with conn.transaction():
                row = await self._lock_event(conn, agent, event_id)
                state = None if row is None else EventState(row[0])
                cur = await conn.execute(
                    self.q(
                        "SELECT 1 FROM {s}.as_signals WHERE agent = %s AND event_id = %s "
                        "AND signal_id = %s"
                    ),
                    (agent, event_id, signal_id),
                )
                duplicate = await cur.fetchone() is not None
                cur = await conn.execute(
                    self.q(
                        "SELECT 1 FROM {s}.as_waits WHERE agent = %s AND event_id = %s "
                        "AND kind = %s AND name = %s"
                    ),
                    (agent, event_id, WAIT_SIGNAL, name),
                )
                waits = await cur.fetchone() is not None
                status = decide_signal(
                    state,
                    duplicate=duplicate,
                    waits_for_it=state == EventState.WAITING and waits,
                )
                if status != SignalStatus.DUPLICATE:
                    rejected = status == SignalStatus.REJECTED
                    # ON CONFLICT: two senders of one signal id at once on an unknown event
                    await conn.execute(
                        self.q(
                            "INSERT INTO {s}.as_signals (agent, event_id, name, signal_id, data, "
                            "received_at, status, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                            "ON CONFLICT (agent, event_id, signal_id) DO NOTHING"
                        ),
                        (
                            agent,
                            event_id,
                            name,
                            signal_id,
                            dumps(data),
                            now,
                            "rejected" if rejected else "pending",
                            f"event is {state}" if rejected else None,
                        ),
                    )
                if status == SignalStatus.DELIVERED:
                    await conn.execute(
                        self.q(
                            "UPDATE {s}.as_events SET lease_until = %s WHERE agent = %s "
                            "AND event_id = %s AND state = 'waiting'"
                        ),
                        (now, agent, event_id),
                    )
                    await conn.execute(
                        self.q(
                            "UPDATE {s}.as_waits SET due_at = %s WHERE agent = %s AND event_id = %s"
                        ),
                        (now, agent, event_id),
                    )
                return SignalReceipt(status, signal_id, None if state is None else str(state))

        return await self.run(op)
