"""Operations on the SQLite journal: redrive, discard, key parking, retention, shadow runs.

Kept apart from :mod:`agentstream.journal.sqlite` (the hot path: claims, steps, completion) as
a mixin of :class:`~agentstream.journal.sqlite.SqliteStore`; see
:class:`~agentstream.journal.base.Store` for the contract of each method.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from agentstream.event import Message, OutgoingRecord, encode_headers
from agentstream.journal.base import (
    DeadLetterRecord,
    EventState,
    ParkedRecord,
    RedriveMode,
    ShadowResult,
    ShadowRun,
)
from agentstream.journal.queries import (
    BLOCKING,
    DLQ_COLUMNS,
    PARKED_COLUMNS,
    Where,
    dead_letter_from_row,
    parked_from_row,
    parked_query,
    parked_values,
)
from agentstream.journal.sqlite_blobs import prune_blobs
from agentstream.sqlite_db import SqliteDatabase


def dumps(value: Any) -> str | None:
    """Compact JSON text of a value (None stays NULL)."""
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> Any:
    """Inverse of :func:`dumps`."""
    return None if text is None else json.loads(text)


def _blocker(conn: sqlite3.Connection, agent: str, key: str) -> str | None:
    row = conn.execute(
        f"SELECT event_id FROM as_dead_letters WHERE agent = ? AND event_key = ? "
        f"AND status IN {BLOCKING} ORDER BY id LIMIT 1",
        (agent, key),
    ).fetchone()
    return None if row is None else str(row[0])


class SqliteOperations:
    """Operator-facing journal operations of the SQLite store (a mixin)."""

    db: SqliteDatabase
    _clock: Callable[[], float]

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None:
        """One dead letter by id."""

        def op(conn: sqlite3.Connection) -> DeadLetterRecord | None:
            row = conn.execute(
                f"SELECT {DLQ_COLUMNS} FROM as_dead_letters WHERE id = ?", (dead_letter_id,)
            ).fetchone()
            return None if row is None else dead_letter_from_row(row)

        return await self.db.read(op)

    async def redrive(
        self,
        agent: str,
        event_id: str,
        *,
        mode: RedriveMode,
        republish: Sequence[OutgoingRecord] = (),
    ) -> bool:
        """Reset a dead event and queue its re-publication, atomically."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE as_events SET state = 'pending', owner = NULL, lease_until = 0, "
                "attempts = 0, outcome = NULL, completed_at = NULL, updated_at = ? "
                "WHERE agent = ? AND event_id = ? AND state = ?",
                (now, agent, event_id, str(EventState.DEAD)),
            )
            if cur.rowcount != 1:
                return False
            if mode == RedriveMode.FRESH:
                conn.execute(
                    "DELETE FROM as_steps WHERE agent = ? AND event_id = ?", (agent, event_id)
                )
            conn.execute(
                "UPDATE as_dead_letters SET status = 'redriven' WHERE agent = ? AND event_id = ? "
                "AND status = 'dead'",
                (agent, event_id),
            )
            first = conn.execute(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM as_outbox WHERE agent = ? AND event_id = ?",
                (agent, event_id),
            ).fetchone()[0]
            conn.executemany(
                "INSERT INTO as_outbox (agent, event_id, seq, topic, key, value, headers, "
                "dedupe_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        agent,
                        event_id,
                        first + i,
                        r.topic,
                        r.key,
                        r.value,
                        encode_headers(r.headers),
                        r.dedupe_id,
                        now,
                    )
                    for i, r in enumerate(republish)
                ],
            )
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

    async def blocked_by(self, agent: str, key: str) -> str | None:
        """The event whose open dead letter blocks ``key``, if any."""
        return await self.db.read(lambda conn: _blocker(conn, agent, key))

    async def park(self, agent: str, event_id: str, key: str, message: Message) -> bool:
        """Park the event when its key is blocked by another event or has parked events."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> bool:
            if conn.execute(
                "SELECT 1 FROM as_parked WHERE agent = ? AND event_id = ?", (agent, event_id)
            ).fetchone():
                return True
            blocker = _blocker(conn, agent, key)
            if blocker == event_id:
                return False  # the blocking event itself (a redrive) runs
            if (
                blocker is None
                and not conn.execute(
                    "SELECT 1 FROM as_parked WHERE agent = ? AND event_key = ? LIMIT 1",
                    (agent, key),
                ).fetchone()
            ):
                return False
            conn.execute(
                f"INSERT INTO as_parked ({PARKED_COLUMNS}) "
                "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                parked_values(agent, event_id, key, message, now),
            )
            return True

        return await self.db.write(op)

    async def parked(
        self, agent: str, *, key: str | None = None, releasable: bool = False, limit: int = 1000
    ) -> list[ParkedRecord]:
        """Parked events in arrival order."""
        sql, args = parked_query("", agent, key=key, releasable=releasable, limit=limit)

        def op(conn: sqlite3.Connection) -> list[ParkedRecord]:
            return [parked_from_row(r) for r in conn.execute(sql, args).fetchall()]

        return await self.db.read(op)

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
                "WHERE state = 'completed' AND completed_at < ? AND NOT EXISTS (SELECT 1 FROM "
                "as_outbox o WHERE o.agent = e.agent AND o.event_id = e.event_id AND "
                "o.published_at IS NULL) AND NOT EXISTS (SELECT 1 FROM as_dead_letters d "
                f"WHERE d.agent = e.agent AND d.event_id = e.event_id AND d.status IN {BLOCKING})",
                (before,),
            )
            out: dict[str, int] = {}
            for table in ("as_steps", "as_failures", "as_outbox", "as_events"):
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
                (
                    run.run_id,
                    run.agent,
                    run.candidate,
                    run.created_at,
                    run.finished_at,
                    dumps(run.summary),
                ),
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

    async def shadow_runs(self, *, run_id: str | None = None, limit: int = 100) -> list[ShadowRun]:
        """Shadow runs, newest first."""
        where = Where().eq("run_id", run_id)

        def op(conn: sqlite3.Connection) -> list[ShadowRun]:
            return [
                ShadowRun(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]))
                for r in conn.execute(
                    "SELECT run_id, agent, candidate, created_at, finished_at, summary FROM "
                    f"as_shadow_runs {where.sql} ORDER BY created_at DESC LIMIT ?",
                    (*where.args, limit),
                )
            ]

        return await self.db.read(op)

    async def shadow_results(self, run_id: str) -> list[ShadowResult]:
        """A shadow run's per-event results in write order."""

        def op(conn: sqlite3.Connection) -> list[ShadowResult]:
            return [
                ShadowResult(run_id, r[0], json.loads(r[1]))
                for r in conn.execute(
                    "SELECT event_id, report FROM as_shadow_results WHERE run_id = ? ORDER BY n",
                    (run_id,),
                )
            ]

        return await self.db.read(op)
