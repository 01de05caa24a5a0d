"""Reads of the PostgreSQL journal: events, steps, outbox, dead letters, counts, shadow runs.

A base class of :class:`~agentstream.journal.postgres.PostgresStore`; see
:class:`~agentstream.journal.base.Store` for the contract of each method. Rows are mapped by
the SQLite journal's row functions: the columns are the same, in the same order.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

from agentstream.journal import postgres_blobs
from agentstream.journal.base import (
    DeadLetterRecord,
    EventRecord,
    EventState,
    FailureRecord,
    OutboxRow,
    ShadowResult,
    ShadowRun,
    StepRecord,
)
from agentstream.journal.postgres_db import Conn, PostgresDatabase
from agentstream.journal.postgres_rows import OUTBOX_COLUMNS, pg_where
from agentstream.journal.queries import (
    DLQ_COLUMNS,
    Where,
    dead_letter_from_row,
    dead_letters_query,
    events_query,
)
from agentstream.journal.sqlite_rows import event_from_row, outbox_from_row, step_from_row
from agentstream.journal.sqlite_schema import EVENT_COLUMNS, STEP_COLUMNS

__all__ = ["PostgresReads"]


class PostgresReads(PostgresDatabase):
    """Read-only queries of the PostgreSQL store."""

    async def applied_version(self, agent: str, entity: str) -> int | None:
        """Highest applied version of an entity."""
        row = await self.fetchone(
            "SELECT version FROM {s}.as_entity_versions WHERE agent = %s AND entity = %s",
            (agent, entity),
        )
        return None if row is None else int(row[0])

    async def get_event(self, agent: str, event_id: str) -> EventRecord | None:
        """One event's row."""
        row = await self.fetchone(
            f"SELECT {EVENT_COLUMNS} FROM {{s}}.as_events WHERE agent = %s AND event_id = %s",
            (agent, event_id),
        )
        return None if row is None else event_from_row(row)

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
        """Events filtered (see :meth:`Store.list_events`)."""
        sql, args = events_query(
            "{s}.",
            EVENT_COLUMNS,
            agent=agent,
            state=state,
            key=key,
            since=since,
            until=until,
            topic=topic,
            partition=partition,
            offset_from=offset_from,
            offset_to=offset_to,
            event_ids=event_ids,
            oldest_first=oldest_first,
            limit=limit,
        )
        return [event_from_row(r) for r in await self.fetchall(pg_where(sql), args)]

    async def steps(self, agent: str, event_id: str) -> list[StepRecord]:
        """An event's steps in order."""
        rows = await self.fetchall(
            f"SELECT {STEP_COLUMNS} FROM {{s}}.as_steps WHERE agent = %s AND event_id = %s "
            "ORDER BY seq",
            (agent, event_id),
        )
        return [step_from_row(r) for r in rows]

    async def failures(self, agent: str, event_id: str) -> list[FailureRecord]:
        """An event's failed attempts in order."""
        rows = await self.fetchall(
            "SELECT attempt, failure_class, error_type, message, traceback, at "
            "FROM {s}.as_failures WHERE agent = %s AND event_id = %s ORDER BY id",
            (agent, event_id),
        )
        return [FailureRecord(*r) for r in rows]

    async def outbox(self, agent: str, event_id: str) -> list[OutboxRow]:
        """An event's outbox rows in order."""
        rows = await self.fetchall(
            f"SELECT {OUTBOX_COLUMNS} FROM {{s}}.as_outbox WHERE agent = %s AND event_id = %s "
            "ORDER BY seq, id",
            (agent, event_id),
        )
        return [outbox_from_row(r) for r in rows]

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
        """Dead letters, newest first, filtered."""
        sql, args = dead_letters_query(
            "{s}.",
            agent=agent,
            status=status,
            failure_class=failure_class,
            key=key,
            since=since,
            until=until,
            limit=limit,
        )
        return [dead_letter_from_row(r) for r in await self.fetchall(pg_where(sql), args)]

    async def counts(self, agent: str | None = None) -> dict[str, int]:
        """Events per state, plus dead letters (all and open), parked and pending outbox."""
        cond = "" if agent is None else "AND agent = %(agent)s"
        sql = (
            f"SELECT state, COUNT(*) FROM {{s}}.as_events WHERE TRUE {cond} GROUP BY state "
            f"UNION ALL SELECT 'dead_letters', COUNT(*) FROM {{s}}.as_dead_letters "
            f"WHERE TRUE {cond} "
            f"UNION ALL SELECT 'dead_letters_open', COUNT(*) FROM {{s}}.as_dead_letters "
            f"WHERE status IN ('dead', 'redriven') {cond} "
            f"UNION ALL SELECT 'parked', COUNT(*) FROM {{s}}.as_parked WHERE TRUE {cond} "
            f"UNION ALL SELECT 'outbox_pending', COUNT(*) FROM {{s}}.as_outbox "
            f"WHERE published_at IS NULL {cond}"
        )
        out = {s.value: 0 for s in EventState}
        for name, n in await self.fetchall(sql, {"agent": agent}):
            out[name] = int(n)
        return out

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None:
        """One dead letter by id."""
        row = await self.fetchone(
            f"SELECT {DLQ_COLUMNS} FROM {{s}}.as_dead_letters WHERE id = %s", (dead_letter_id,)
        )
        return None if row is None else dead_letter_from_row(row)

    async def shadow_runs(self, *, run_id: str | None = None, limit: int = 100) -> list[ShadowRun]:
        """Shadow runs, newest first."""
        where = Where().eq("run_id", run_id)
        rows = await self.fetchall(
            "SELECT run_id, agent, candidate, created_at, finished_at, summary FROM "
            f"{{s}}.as_shadow_runs {pg_where(where.sql)} ORDER BY created_at DESC LIMIT %s",
            (*where.args, limit),
        )
        return [ShadowRun(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    async def shadow_results(self, run_id: str) -> list[ShadowResult]:
        """A shadow run's per-event results in write order."""
        rows = await self.fetchall(
            "SELECT event_id, report FROM {s}.as_shadow_results WHERE run_id = %s ORDER BY n",
            (run_id,),
        )
        return [ShadowResult(run_id, r[0], json.loads(r[1])) for r in rows]

    async def get_blobs(self, digests: Collection[str]) -> dict[str, str]:
        """The stored texts among ``digests``."""

        async def op(conn: Conn) -> dict[str, str]:
            return await postgres_blobs.get_blobs(conn, self.schema, digests)

        return await self.run(op)
