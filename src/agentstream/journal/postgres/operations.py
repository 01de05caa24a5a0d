"""Operations on the PostgreSQL journal: redrive, discard, key parking, retention, shadow runs.

Kept apart from :mod:`agentstream.journal.postgres.store` (the hot path: claims, steps, completion)
as a base class of :class:`~agentstream.journal.postgres.PostgresStore`; see
:class:`~agentstream.journal.store.Store` for the contract of each method.

Parking must be atomic with respect to redrive, discard, dead-lettering and other parks of the
same key. SQLite gets that from its single writer; here each of them takes a
transaction-scoped advisory lock on ``(schema, agent, key)`` first.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentstream.event import Message
from agentstream.journal import lifecycle
from agentstream.journal.postgres.blobs import prune_blobs
from agentstream.journal.postgres.database import Conn, PostgresDatabase
from agentstream.journal.postgres.statements import INSERT_OUTBOX, outbox_arrays, pg_where
from agentstream.journal.queries import (
    BLOCKING,
    blocker_query,
    parked_event_query,
    parked_key_query,
)
from agentstream.journal.records import ShadowResult, ShadowRun
from agentstream.journal.rows import PARKED_COLUMNS, dumps, parked_values, shadow_run_values
from agentstream.journal.sql import RedriveWrite

__all__ = ["PostgresOperations"]

_PRUNE_EVENTS = f"""
WITH doomed AS MATERIALIZED (
    SELECT agent, event_id FROM {{s}}.as_events e
    WHERE state = '{lifecycle.PRUNABLE}' AND completed_at < %(before)s
    AND NOT EXISTS (SELECT 1 FROM {{s}}.as_outbox o WHERE o.agent = e.agent
        AND o.event_id = e.event_id AND o.published_at IS NULL)
    AND NOT EXISTS (SELECT 1 FROM {{s}}.as_dead_letters d WHERE d.agent = e.agent
        AND d.event_id = e.event_id AND d.status IN {BLOCKING})
    FOR UPDATE
), steps AS (
    DELETE FROM {{s}}.as_steps WHERE (agent, event_id) IN (SELECT * FROM doomed) RETURNING 1
), failures AS (
    DELETE FROM {{s}}.as_failures WHERE (agent, event_id) IN (SELECT * FROM doomed) RETURNING 1
), outbox AS (
    DELETE FROM {{s}}.as_outbox WHERE (agent, event_id) IN (SELECT * FROM doomed) RETURNING 1
), waits AS (
    DELETE FROM {{s}}.as_waits WHERE (agent, event_id) IN (SELECT * FROM doomed) RETURNING 1
), signals AS (
    DELETE FROM {{s}}.as_signals WHERE (agent, event_id) IN (SELECT * FROM doomed) RETURNING 1
), events AS (
    DELETE FROM {{s}}.as_events WHERE (agent, event_id) IN (SELECT * FROM doomed) RETURNING 1
)
SELECT (SELECT COUNT(*) FROM steps), (SELECT COUNT(*) FROM failures),
    (SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM waits),
    (SELECT COUNT(*) FROM signals), (SELECT COUNT(*) FROM events)
"""
"""Delete finished events and their history in one statement (one snapshot)."""


class PostgresOperations(PostgresDatabase):
    """Operator-facing journal operations of the PostgreSQL store (a base class of it)."""

    async def lock_key(self, conn: Conn, agent: str, key: str | None) -> None:
        """Hold the parking lock of ``agent``'s ``key`` until the transaction ends."""
        if key is not None:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"agentstream.key:{self.schema}:{agent}:{key}",),
            )

    async def _exists(self, conn: Conn, sql: str, args: tuple[str, ...]) -> bool:
        cur = await conn.execute(self.q(pg_where(sql)), args)
        return await cur.fetchone() is not None

    async def reset_dead(self, write: RedriveWrite) -> bool:
        """Reset a dead event and queue its re-publication, in one transaction."""
        agent, event_id, now, republish = write.agent, write.event_id, write.now, write.republish

        async def op(conn: Conn) -> bool:
            async with conn.transaction():
                cur = await conn.execute(
                    self.q(
                        "UPDATE {s}.as_events SET state = 'pending', owner = NULL, "
                        "lease_until = 0, attempts = 0, outcome = NULL, completed_at = NULL, "
                        "updated_at = %s WHERE agent = %s AND event_id = %s AND state = %s "
                        "RETURNING event_key"
                    ),
                    (now, agent, event_id, str(lifecycle.REDRIVABLE)),
                )
                row = await cur.fetchone()
                if row is None:
                    return False
                await self.lock_key(conn, agent, row[0])
                if write.forget_steps:
                    await conn.execute(
                        self.q("DELETE FROM {s}.as_steps WHERE agent = %s AND event_id = %s"),
                        (agent, event_id),
                    )
                await conn.execute(
                    self.q(
                        "UPDATE {s}.as_dead_letters SET status = 'redriven' WHERE agent = %s "
                        "AND event_id = %s AND status = 'dead'"
                    ),
                    (agent, event_id),
                )
                if republish:
                    await conn.execute(
                        self.q(INSERT_OUTBOX),
                        {"agent": agent, "event_id": event_id, "now": now}
                        | outbox_arrays(republish),
                    )
                return True

        return await self.run(op)

    async def discard(self, agent: str, event_id: str) -> bool:
        """Close an event's open dead letters as discarded."""

        async def op(conn: Conn) -> bool:
            async with conn.transaction():
                cur = await conn.execute(
                    self.q(
                        "SELECT event_key FROM {s}.as_events WHERE agent = %s AND event_id = %s"
                    ),
                    (agent, event_id),
                )
                row = await cur.fetchone()
                await self.lock_key(conn, agent, None if row is None else row[0])
                cur = await conn.execute(
                    self.q(
                        "UPDATE {s}.as_dead_letters SET status = 'discarded' WHERE agent = %s "
                        f"AND event_id = %s AND status IN {BLOCKING}"
                    ),
                    (agent, event_id),
                )
                return cur.rowcount > 0

        return await self.run(op)

    async def park(self, agent: str, event_id: str, key: str, message: Message) -> bool:
        """Park the event when its key is blocked by another event or has parked events."""
        now = self._clock()

        async def op(conn: Conn) -> bool:
            async with conn.transaction():
                await self.lock_key(conn, agent, key)
                already = await self._exists(conn, parked_event_query("{s}."), (agent, event_id))
                cur = await conn.execute(self.q(pg_where(blocker_query("{s}."))), (agent, key))
                blocker = await cur.fetchone()
                parks = lifecycle.decide_park(
                    event_id=event_id,
                    already_parked=already,
                    blocker=None if blocker is None else str(blocker[0]),
                    key_has_parked=await self._exists(conn, parked_key_query("{s}."), (agent, key)),
                )
                if already or not parks:
                    return parks
                await conn.execute(
                    self.q(
                        f"INSERT INTO {{s}}.as_parked ({PARKED_COLUMNS.removeprefix('id, ')}) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                        "ON CONFLICT (agent, event_id) DO NOTHING"
                    ),
                    parked_values(agent, event_id, key, message, now),
                )
                return True

        return await self.run(op)

    async def unpark(self, agent: str, parked_id: int) -> None:
        """Forget a processed parked event."""
        await self.execute(
            "DELETE FROM {s}.as_parked WHERE agent = %s AND id = %s", (agent, parked_id)
        )

    async def prune(self, *, before: float) -> dict[str, int]:
        """Delete finished history older than ``before``, in one transaction."""

        async def op(conn: Conn) -> dict[str, int]:
            async with conn.transaction():
                cur = await conn.execute(self.q(_PRUNE_EVENTS), {"before": before})
                counts = await cur.fetchone()
                assert counts is not None
                out = dict(
                    zip(
                        ("steps", "failures", "outbox", "waits", "signals", "events"),
                        map(int, counts),
                        strict=True,
                    )
                )
                cur = await conn.execute(
                    self.q(
                        f"DELETE FROM {{s}}.as_dead_letters WHERE status NOT IN {BLOCKING} "
                        "AND created_at < %s"
                    ),
                    (before,),
                )
                out["dead_letters"] = cur.rowcount
                await conn.execute(
                    self.q(
                        "DELETE FROM {s}.as_shadow_results WHERE run_id IN "
                        "(SELECT run_id FROM {s}.as_shadow_runs WHERE created_at < %s)"
                    ),
                    (before,),
                )
                cur = await conn.execute(
                    self.q("DELETE FROM {s}.as_shadow_runs WHERE created_at < %s"), (before,)
                )
                out["shadow_runs"] = cur.rowcount
                out["blobs"] = await prune_blobs(conn, self.schema, before)
                return out

        return await self.run(op)

    async def save_shadow_run(self, run: ShadowRun) -> None:
        """Insert or update a shadow run's header."""
        await self.execute(
            "INSERT INTO {s}.as_shadow_runs (run_id, agent, candidate, created_at, finished_at, "
            "summary) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE SET "
            "finished_at = EXCLUDED.finished_at, summary = EXCLUDED.summary",
            shadow_run_values(run),
        )

    async def write_shadow_results(self, results: Sequence[ShadowResult]) -> None:
        """Store per-event shadow results (a result written again keeps its place)."""
        latest = {(r.run_id, r.event_id): dumps(r.report) for r in results}
        if not latest:
            return
        await self.execute(
            "INSERT INTO {s}.as_shadow_results (run_id, event_id, report) "
            "SELECT r.run_id, r.event_id, r.report FROM unnest(%s::text[], %s::text[], %s::text[]) "
            "WITH ORDINALITY "
            "AS r(run_id, event_id, report, n) ORDER BY n "
            "ON CONFLICT (run_id, event_id) DO UPDATE SET report = EXCLUDED.report",
            ([k[0] for k in latest], [k[1] for k in latest], list(latest.values())),
        )
