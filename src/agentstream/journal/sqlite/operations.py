"""Operations on the SQLite journal: redrive, discard, key parking, retention, shadow runs.

Kept apart from :mod:`agentstream.journal.sqlite.store` (the hot path: claims, steps,
completion) as a mixin of :class:`~agentstream.journal.sqlite.SqliteStore`; see
:class:`~agentstream.journal.store.Store` for the contract of each method and
:mod:`agentstream.journal.lifecycle` for the decisions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from agentstream.event import Message
from agentstream.journal import lifecycle
from agentstream.journal.queries import (
    BLOCKING,
    blocker_query,
    parked_event_query,
    parked_key_query,
)
from agentstream.journal.records import ShadowResult, ShadowRun
from agentstream.journal.rows import PARKED_COLUMNS, dumps, parked_values, shadow_run_values
from agentstream.journal.sql import RedriveWrite
from agentstream.journal.sqlite.blobs import prune_blobs
from agentstream.journal.sqlite.statements import append_outbox
from agentstream.sqlite_db import SqliteDatabase


class SqliteOperations:
    """Operator-facing journal operations of the SQLite store (a mixin)."""

    db: SqliteDatabase
    _clock: Callable[[], float]

    async def reset_dead(self, write: RedriveWrite) -> bool:
        """Reset a dead event and queue its re-publication, in one transaction."""
        agent, event_id, now = write.agent, write.event_id, write.now

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE as_events SET state = 'pending', owner = NULL, lease_until = 0, "
                "attempts = 0, outcome = NULL, completed_at = NULL, updated_at = ? "
                "WHERE agent = ? AND event_id = ? AND state = ?",
                (now, agent, event_id, str(lifecycle.REDRIVABLE)),
            )
            if cur.rowcount != 1:
                return False
            if write.forget_steps:
                conn.execute(
                    "DELETE FROM as_steps WHERE agent = ? AND event_id = ?", (agent, event_id)
                )
            conn.execute(
                "UPDATE as_dead_letters SET status = 'redriven' WHERE agent = ? AND event_id = ? "
                "AND status = 'dead'",
                (agent, event_id),
            )
            append_outbox(conn, agent, event_id, write.republish, now)
            return True

        return await self.db.write(op)

    async def discard(self, agent: str, event_id: str) -> bool:
        """Close an event's open dead letters as discarded."""

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                f"UPDATE as_dead_letters SET status = 'discarded' WHERE agent = ? "
                f"AND event_id = ? AND status IN {BLOCKING}",
                (agent, event_id),
            )
            return cur.rowcount > 0

        return await self.db.write(op)

    async def park(self, agent: str, event_id: str, key: str, message: Message) -> bool:
        """Park the event when its key is blocked by another event or has parked events."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> bool:
            already = conn.execute(parked_event_query(""), (agent, event_id)).fetchone()
            blocker = conn.execute(blocker_query(""), (agent, key)).fetchone()
            parks = lifecycle.decide_park(
                event_id=event_id,
                already_parked=already is not None,
                blocker=None if blocker is None else str(blocker[0]),
                key_has_parked=conn.execute(parked_key_query(""), (agent, key)).fetchone()
                is not None,
            )
            if already or not parks:
                return parks
            conn.execute(
                f"INSERT INTO as_parked ({PARKED_COLUMNS}) "
                "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                parked_values(agent, event_id, key, message, now),
            )
            return True

        return await self.db.write(op)

    async def unpark(self, agent: str, parked_id: int) -> None:
        """Forget a processed parked event."""
        await self.db.write(
            lambda conn: conn.execute(
                "DELETE FROM as_parked WHERE agent = ? AND id = ?", (agent, parked_id)
            )
        )

    async def prune(self, *, before: float) -> dict[str, int]:
        """Delete finished history older than ``before``."""

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            conn.execute("DROP TABLE IF EXISTS temp.as_prune")
            conn.execute(
                "CREATE TEMP TABLE as_prune AS SELECT agent, event_id FROM as_events e "
                "WHERE state = ? AND completed_at < ? AND NOT EXISTS (SELECT 1 FROM "
                "as_outbox o WHERE o.agent = e.agent AND o.event_id = e.event_id AND "
                "o.published_at IS NULL) AND NOT EXISTS (SELECT 1 FROM as_dead_letters d "
                f"WHERE d.agent = e.agent AND d.event_id = e.event_id AND d.status IN {BLOCKING})",
                (str(lifecycle.PRUNABLE), before),
            )
            out: dict[str, int] = {}
            for table in (
                "as_steps",
                "as_failures",
                "as_outbox",
                "as_waits",
                "as_signals",
                "as_events",
            ):
                out[table.removeprefix("as_")] = conn.execute(
                    f"DELETE FROM {table} WHERE (agent, event_id) IN "
                    "(SELECT agent, event_id FROM temp.as_prune)"
                ).rowcount
            conn.execute("DROP TABLE temp.as_prune")
            out["dead_letters"] = conn.execute(
                f"DELETE FROM as_dead_letters WHERE status NOT IN {BLOCKING} AND created_at < ?",
                (before,),
            ).rowcount
            old_runs = "SELECT run_id FROM as_shadow_runs WHERE created_at < ?"
            conn.execute(f"DELETE FROM as_shadow_results WHERE run_id IN ({old_runs})", (before,))
            out["shadow_runs"] = conn.execute(
                "DELETE FROM as_shadow_runs WHERE created_at < ?", (before,)
            ).rowcount
            out["blobs"] = prune_blobs(conn, before)
            return out

        return await self.db.write(op)

    async def save_shadow_run(self, run: ShadowRun) -> None:
        """Insert or update a shadow run's header."""
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO as_shadow_runs (run_id, agent, candidate, created_at, finished_at, "
                "summary) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
                "finished_at = excluded.finished_at, summary = excluded.summary",
                shadow_run_values(run),
            )
        )

    async def write_shadow_results(self, results: Sequence[ShadowResult]) -> None:
        """Store per-event shadow results."""
        rows = [(r.run_id, r.event_id, dumps(r.report)) for r in results]
        if not rows:
            return
        await self.db.write(
            lambda conn: conn.executemany(
                "INSERT INTO as_shadow_results (run_id, event_id, report) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, event_id) DO UPDATE SET report = excluded.report",
                rows,
            )
        )
