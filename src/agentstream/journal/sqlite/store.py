"""The SQLite journal: the embedded default, one file, no server."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentstream.failures import FencedError
from agentstream.journal import lifecycle
from agentstream.journal.queries import claimable_outbox
from agentstream.journal.records import Claim, ClaimStatus, FailureRecord, OutboxRow, StepRecord
from agentstream.journal.rows import (
    OUTBOX_COLUMNS,
    STEP_COLUMNS,
    dumps,
    failure_values,
    outbox_from_row,
    step_values,
)
from agentstream.journal.shared import SqliteHome
from agentstream.journal.sql import ClaimBatch, CompletionBatch, DeadLetterWrite, SqlJournal
from agentstream.journal.sqlite.blobs import SqliteBlobs
from agentstream.journal.sqlite.operations import SqliteOperations
from agentstream.journal.sqlite.schema import migrate
from agentstream.journal.sqlite.statements import (
    append_outbox,
    claim_rows,
    current_claims,
    fence,
    insert_fresh,
    insert_outbox,
    run_select,
    steps_of,
)
from agentstream.journal.sqlite.waits import SqliteWaits
from agentstream.journal.wait_reads import WaitReads
from agentstream.journal.wait_writes import WaitWrites
from agentstream.sqlite_db import SqliteDatabase, sqlite_path

if TYPE_CHECKING:
    from agentstream.sqlite_db import SqliteFiles

_CLAIMABLE_OUTBOX = claimable_outbox("", OUTBOX_COLUMNS)


class SqliteStore(SqliteOperations, SqliteBlobs, SqliteWaits, WaitWrites, WaitReads, SqlJournal):
    """Journal in a SQLite file (WAL mode), shareable by several worker processes.

    Args:
        path_or_db: A file path, or a :class:`SqliteDatabase` shared with the embedded log.
        clock: Wall-clock source in seconds (injectable for tests).
    """

    def __init__(
        self, path_or_db: str | Path | SqliteDatabase, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = (
            path_or_db if isinstance(path_or_db, SqliteDatabase) else SqliteDatabase(path_or_db)
        )
        self._clock = clock

    def __repr__(self) -> str:
        return f"SqliteStore({self.db.path!r})"

    def shared_home(self) -> SqliteHome:
        """Shared state lives in this journal's file."""
        return SqliteHome(self.db)

    async def open(self) -> None:
        """Start the database thread and create the schema."""
        await self.db.start()

        await self.db.write(migrate)

    async def close(self) -> None:
        """Stop the database thread (when no one else shares it)."""
        await self.db.close()

    async def claim_batch(self, batch: ClaimBatch) -> dict[str, Claim]:
        """Decide and write a batch of claims in one transaction."""
        agent, owner, now, until = batch.agent, batch.owner, batch.now, batch.until

        def op(conn: sqlite3.Connection) -> dict[str, Claim]:
            known = claim_rows(conn, agent, list(batch.metas))
            fresh = {e: meta for e, meta in batch.metas.items() if e not in known}
            insert_fresh(conn, agent, fresh, owner, until, now)
            answers = {e: lifecycle.first_claim(until) for e in fresh}
            answers |= {
                e: lifecycle.decide_claim(row, now=now, until=until) for e, row in known.items()
            }
            settled = [e for e in known if lifecycle.counts_delivery(answers[e])]
            conn.executemany(
                "UPDATE as_events SET deliveries = deliveries + ? WHERE agent = ? AND event_id = ?",
                [(batch.asked[e], agent, e) for e in settled],
            )
            granted = [e for e in known if answers[e].status == ClaimStatus.CLAIMED]
            conn.executemany(
                "UPDATE as_events SET state = 'claimed', epoch = ?, owner = ?, lease_until = ?, "
                "attempts = ?, deliveries = deliveries + 1, updated_at = ? "
                "WHERE agent = ? AND event_id = ?",
                [
                    (answers[e].epoch, owner, until, answers[e].attempts, now, agent, e)
                    for e in granted
                ],
            )
            for e in granted:
                answers[e] = replace(answers[e], steps=steps_of(conn, agent, e))
            return answers

        return await self.db.write(op)

    async def renew(
        self, agent: str, claims: Sequence[tuple[str, int]], lease_s: float
    ) -> set[str]:
        """Extend leases to at least ``lease_s`` from now (never shorten); return lost ids."""
        if not claims:
            return set()
        now = self._clock()

        def op(conn: sqlite3.Connection) -> set[str]:
            lost: set[str] = set()
            for event_id, epoch in claims:
                cur = conn.execute(
                    "UPDATE as_events SET lease_until = MAX(lease_until, ?) WHERE agent = ? "
                    "AND event_id = ? AND epoch = ? AND state = 'claimed'",
                    (now + lease_s, agent, event_id, epoch),
                )
                if cur.rowcount != 1:
                    lost.add(event_id)
            return lost

        return await self.db.write(op)

    async def release(
        self, agent: str, event_id: str, epoch: int, *, not_before: float = 0.0
    ) -> None:
        """Give a claim back; nobody may claim it again before ``not_before``."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE as_events SET state = 'pending', owner = NULL, lease_until = ?, "
                "updated_at = ? WHERE agent = ? AND event_id = ? AND epoch = ? "
                "AND state = 'claimed'",
                (not_before, now, agent, event_id, epoch),
            )

        await self.db.write(op)

    async def write_step(self, agent: str, event_id: str, epoch: int, step: StepRecord) -> None:
        """Insert or replace one step, fenced by epoch."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> None:
            fence(conn, agent, event_id, epoch, now)
            conn.execute(
                f"INSERT OR REPLACE INTO as_steps (agent, event_id, {STEP_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                step_values(agent, event_id, epoch, step),
            )

        await self.db.write(op)

    async def complete_batch(self, batch: CompletionBatch) -> list[FencedError | None]:
        """Complete the live claims of a batch in one transaction."""
        agent, items, now = batch.agent, batch.items, batch.now

        def op(conn: sqlite3.Connection) -> list[FencedError | None]:
            ids = list(dict.fromkeys(event_id for event_id, _, _ in items))
            errors = lifecycle.settle_batch(agent, items, current_claims(conn, agent, ids))
            rows = []
            for (event_id, _, completion), error in zip(items, errors, strict=True):
                if error is not None:
                    continue
                rows.append(
                    (completion.outcome, dumps(completion.result), now, now, agent, event_id)
                )
                if completion.outputs:
                    insert_outbox(conn, agent, event_id, completion.outputs, now)
                if completion.entity is not None and completion.version is not None:
                    conn.execute(
                        "INSERT INTO as_entity_versions (agent, entity, version) "
                        "VALUES (?, ?, ?) ON CONFLICT (agent, entity) DO UPDATE SET "
                        "version = MAX(version, excluded.version)",
                        (agent, completion.entity, completion.version),
                    )
            conn.executemany(
                "UPDATE as_events SET state = 'completed', owner = NULL, lease_until = 0, "
                "outcome = ?, result = ?, completed_at = ?, updated_at = ? "
                "WHERE agent = ? AND event_id = ?",
                rows,
            )
            # a redriven event that completes resolves its dead letter (and releases its key)
            conn.executemany(
                "UPDATE as_dead_letters SET status = 'resolved' WHERE agent = ? AND event_id = ? "
                "AND status = 'redriven'",
                [(agent, row[-1]) for row in rows],
            )
            return errors

        return await self.db.write(op)

    async def record_failure(
        self, agent: str, event_id: str, epoch: int, failure: FailureRecord
    ) -> None:
        """Append a failed attempt, fenced by epoch."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> None:
            fence(conn, agent, event_id, epoch, now)
            conn.execute(
                "INSERT INTO as_failures (agent, event_id, attempt, failure_class, error_type, "
                "message, traceback, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                failure_values(agent, event_id, failure, now),
            )

        await self.db.write(op)

    async def write_dead_letter(self, write: DeadLetterWrite) -> int:
        """Mark the event dead with its envelope and DLQ records, in one transaction."""
        agent, event_id, epoch, now = write.agent, write.event_id, write.epoch, write.now

        def op(conn: sqlite3.Connection) -> int:
            fence(conn, agent, event_id, epoch, now)
            conn.execute(
                "UPDATE as_events SET state = 'dead', owner = NULL, lease_until = 0, "
                "outcome = ?, completed_at = ? WHERE agent = ? AND event_id = ?",
                (write.failure_class, now, agent, event_id),
            )
            key = conn.execute(
                "SELECT event_key FROM as_events WHERE agent = ? AND event_id = ?",
                (agent, event_id),
            ).fetchone()[0]
            conn.execute(
                "UPDATE as_dead_letters SET status = 'superseded' WHERE agent = ? "
                "AND event_id = ? AND status IN ('dead', 'redriven')",
                (agent, event_id),
            )
            cur = conn.execute(
                "INSERT INTO as_dead_letters (agent, event_id, failure_class, event_key, "
                "created_at, status, envelope) VALUES (?, ?, ?, ?, ?, 'dead', ?)",
                (agent, event_id, write.failure_class, key, now, dumps(write.envelope)),
            )
            append_outbox(conn, agent, event_id, write.outputs, now)
            return int(cur.lastrowid or 0)

        return await self.db.write(op)

    async def claim_outbox(self, owner: str, *, limit: int, lease_s: float) -> list[OutboxRow]:
        """Lease up to ``limit`` claimable rows, oldest first (see ``Store.claim_outbox``)."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> list[OutboxRow]:
            rows = conn.execute(_CLAIMABLE_OUTBOX, (now, owner, now, owner, limit)).fetchall()
            if rows:
                conn.executemany(
                    "UPDATE as_outbox SET relay_owner = ?, relay_lease = ? WHERE id = ?",
                    [(owner, now + lease_s, r[0]) for r in rows],
                )
            return [outbox_from_row(r) for r in rows]

        return await self.db.write(op)

    async def mark_published(self, ids: Sequence[int]) -> None:
        """Record publication of outbox rows."""
        if not ids:
            return
        now = self._clock()

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE as_outbox SET published_at = ? WHERE id = ?", [(now, i) for i in ids]
            )

        await self.db.write(op)

    async def defer_outbox(self, owner: str, ids: Sequence[int], delay_s: float) -> None:
        """Release ``owner``'s leased, unpublished rows; no relay claims them for ``delay_s``."""
        if not ids:
            return
        until = self._clock() + delay_s

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE as_outbox SET relay_owner = NULL, relay_lease = ? "
                "WHERE id = ? AND relay_owner = ? AND published_at IS NULL",
                [(until, i, owner) for i in ids],
            )

        await self.db.write(op)

    async def select(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query (see :class:`~agentstream.journal.sql.SqlJournal`)."""
        return await self.db.read(lambda conn: run_select(conn, sql, args))


def from_url(url: str, backends: SqliteFiles) -> SqliteStore:
    """A SQLite journal for a ``sqlite://`` URL, sharing the process's database thread."""
    return SqliteStore(backends.sqlite(sqlite_path(url)))
