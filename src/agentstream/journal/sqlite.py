"""The SQLite journal: the embedded default, one file, no server."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentstream.event import OutgoingRecord, encode_headers
from agentstream.failures import FencedError
from agentstream.journal.base import (
    Claim,
    ClaimStatus,
    Completion,
    DeadLetterRecord,
    EventMeta,
    EventRecord,
    EventState,
    FailureRecord,
    OutboxRow,
    StepRecord,
)
from agentstream.journal.queries import (
    OUTBOX_COLUMNS,
    claimable_outbox,
    dead_letter_from_row,
    dead_letters_query,
    events_query,
)
from agentstream.journal.sqlite_blobs import SqliteBlobs
from agentstream.journal.sqlite_ops import SqliteOperations, dumps
from agentstream.journal.sqlite_rows import (
    chunks,
    claim_existing,
    event_from_row,
    fence,
    filters,
    insert_outbox,
    outbox_from_row,
    step_from_row,
)
from agentstream.journal.sqlite_schema import (
    EVENT_COLUMNS,
    STEP_COLUMNS,
    migrate,
)
from agentstream.sqlite_db import SqliteDatabase

if TYPE_CHECKING:
    from agentstream.backends import Backends

_CLAIMABLE_OUTBOX = claimable_outbox("", OUTBOX_COLUMNS)


class SqliteStore(SqliteOperations, SqliteBlobs):
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

    async def open(self) -> None:
        """Start the database thread and create the schema."""
        await self.db.start()

        await self.db.write(migrate)

    async def close(self) -> None:
        """Stop the database thread (when no one else shares it)."""
        await self.db.close()

    async def claim(
        self, agent: str, event_id: str, *, owner: str, lease_s: float, meta: EventMeta
    ) -> Claim:
        """Atomically claim an event (see :meth:`Store.claim`)."""
        [claim] = await self.claim_many(agent, [(event_id, meta)], owner=owner, lease_s=lease_s)
        return claim

    async def claim_many(
        self,
        agent: str,
        requests: Sequence[tuple[str, EventMeta]],
        *,
        owner: str,
        lease_s: float,
    ) -> list[Claim]:
        """Claim several events in one transaction; answers are in request order."""
        now = self._clock()
        until = now + lease_s

        def op(conn: sqlite3.Connection) -> list[Claim]:
            ids = list(dict.fromkeys(event_id for event_id, _ in requests))
            existing: set[str] = set()
            for chunk in chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                existing.update(
                    r[0]
                    for r in conn.execute(
                        f"SELECT event_id FROM as_events WHERE agent = ? AND event_id IN ({marks})",
                        (agent, *chunk),
                    )
                )
            fresh: dict[str, EventMeta] = {}
            for event_id, meta in requests:
                if event_id not in existing:
                    fresh.setdefault(event_id, meta)
            conn.executemany(
                "INSERT INTO as_events (agent, event_id, state, epoch, owner, lease_until, "
                'attempts, deliveries, event_key, topic, partition, "offset", timestamp_ms, '
                "input_hash, group_id, identity_source, created_at, updated_at, msg_key, "
                "msg_value, msg_headers) "
                "VALUES (?, ?, 'claimed', 1, ?, ?, 1, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        agent,
                        event_id,
                        owner,
                        until,
                        m.key,
                        m.topic,
                        m.partition,
                        m.offset,
                        m.timestamp_ms,
                        m.input_hash,
                        m.group_id,
                        m.identity_source,
                        now,
                        now,
                        None if m.message is None else m.message.key,
                        None if m.message is None else m.message.value,
                        None if m.message is None else encode_headers(m.message.headers),
                    )
                    for event_id, m in fresh.items()
                ],
            )
            answers: list[Claim] = []
            granted: set[str] = set()
            for event_id, _ in requests:
                if event_id in fresh and event_id not in granted:
                    granted.add(event_id)
                    answers.append(Claim(ClaimStatus.CLAIMED, 1, 1, until))
                else:
                    answers.append(claim_existing(conn, agent, event_id, owner, now, lease_s))
            return answers

        return await self.db.write(op)

    async def renew(
        self, agent: str, claims: Sequence[tuple[str, int]], lease_s: float
    ) -> set[str]:
        """Extend leases; return the event ids whose claim was lost."""
        if not claims:
            return set()
        now = self._clock()

        def op(conn: sqlite3.Connection) -> set[str]:
            lost: set[str] = set()
            for event_id, epoch in claims:
                cur = conn.execute(
                    "UPDATE as_events SET lease_until = ? WHERE agent = ? AND event_id = ? "
                    "AND epoch = ? AND state = 'claimed'",
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
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    agent,
                    event_id,
                    step.seq,
                    str(step.kind),
                    step.name,
                    step.fingerprint,
                    str(step.status),
                    dumps(step.request),
                    dumps(step.result),
                    step.idempotency_key,
                    dumps(step.meta),
                    epoch,
                    step.started_at,
                    step.finished_at,
                ),
            )

        await self.db.write(op)

    async def complete(self, agent: str, event_id: str, epoch: int, completion: Completion) -> None:
        """Complete the event, enqueue outputs and record the entity version, atomically."""
        [error] = await self.complete_many(agent, [(event_id, epoch, completion)])
        if error is not None:
            raise error

    async def complete_many(
        self, agent: str, items: Sequence[tuple[str, int, Completion]]
    ) -> list[FencedError | None]:
        """Complete several events in one transaction; a FencedError for each stale claim."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> list[FencedError | None]:
            current: dict[str, tuple[int, str]] = {}
            ids = list(dict.fromkeys(event_id for event_id, _, _ in items))
            for chunk in chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                for event_id, epoch, state in conn.execute(
                    f"SELECT event_id, epoch, state FROM as_events WHERE agent = ? "
                    f"AND event_id IN ({marks})",
                    (agent, *chunk),
                ):
                    current[event_id] = (epoch, state)
            errors: list[FencedError | None] = []
            rows = []
            for event_id, epoch, completion in items:
                if current.get(event_id) != (epoch, EventState.CLAIMED):
                    errors.append(
                        FencedError(
                            f"claim on {agent}/{event_id} at epoch {epoch} is no longer current"
                        )
                    )
                    continue
                current[event_id] = (epoch, EventState.COMPLETED)
                errors.append(None)
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
                (
                    agent,
                    event_id,
                    failure.attempt,
                    failure.failure_class,
                    failure.error_type,
                    failure.message,
                    failure.traceback,
                    failure.at or now,
                ),
            )

        await self.db.write(op)

    async def dead_letter(
        self,
        agent: str,
        event_id: str,
        epoch: int,
        *,
        failure_class: str,
        envelope: dict[str, Any],
        outputs: Sequence[OutgoingRecord] = (),
    ) -> int:
        """Mark the event dead with its envelope and DLQ records, atomically."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int:
            fence(conn, agent, event_id, epoch, now)
            conn.execute(
                "UPDATE as_events SET state = 'dead', owner = NULL, lease_until = 0, "
                "outcome = ?, completed_at = ? WHERE agent = ? AND event_id = ?",
                (failure_class, now, agent, event_id),
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
                (agent, event_id, failure_class, key, now, dumps(envelope)),
            )
            first_seq = conn.execute(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM as_outbox WHERE agent = ? AND event_id = ?",
                (agent, event_id),
            ).fetchone()[0]
            insert_outbox(conn, agent, event_id, outputs, now, first_seq)
            return int(cur.lastrowid or 0)

        return await self.db.write(op)

    async def applied_version(self, agent: str, entity: str) -> int | None:
        """Highest applied version of an entity."""

        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT version FROM as_entity_versions WHERE agent = ? AND entity = ?",
                (agent, entity),
            ).fetchone()
            return None if row is None else int(row[0])

        return await self.db.read(op)

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

    async def get_event(self, agent: str, event_id: str) -> EventRecord | None:
        """One event's row."""

        def op(conn: sqlite3.Connection) -> EventRecord | None:
            row = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM as_events WHERE agent = ? AND event_id = ?",
                (agent, event_id),
            ).fetchone()
            return None if row is None else event_from_row(row)

        return await self.db.read(op)

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
            "",
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

        def op(conn: sqlite3.Connection) -> list[EventRecord]:
            return [event_from_row(r) for r in conn.execute(sql, args).fetchall()]

        return await self.db.read(op)

    async def steps(self, agent: str, event_id: str) -> list[StepRecord]:
        """An event's steps in order."""

        def op(conn: sqlite3.Connection) -> list[StepRecord]:
            return [
                step_from_row(r)
                for r in conn.execute(
                    f"SELECT {STEP_COLUMNS} FROM as_steps WHERE agent = ? AND event_id = ? "
                    "ORDER BY seq",
                    (agent, event_id),
                )
            ]

        return await self.db.read(op)

    async def failures(self, agent: str, event_id: str) -> list[FailureRecord]:
        """An event's failed attempts in order."""

        def op(conn: sqlite3.Connection) -> list[FailureRecord]:
            return [
                FailureRecord(*r)
                for r in conn.execute(
                    "SELECT attempt, failure_class, error_type, message, traceback, at "
                    "FROM as_failures WHERE agent = ? AND event_id = ? ORDER BY id",
                    (agent, event_id),
                )
            ]

        return await self.db.read(op)

    async def outbox(self, agent: str, event_id: str) -> list[OutboxRow]:
        """An event's outbox rows in order."""

        def op(conn: sqlite3.Connection) -> list[OutboxRow]:
            return [
                outbox_from_row(r)
                for r in conn.execute(
                    "SELECT id, agent, event_id, seq, topic, key, value, headers, dedupe_id, "
                    "published_at FROM as_outbox WHERE agent = ? AND event_id = ? ORDER BY seq",
                    (agent, event_id),
                )
            ]

        return await self.db.read(op)

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
            "",
            agent=agent,
            status=status,
            failure_class=failure_class,
            key=key,
            since=since,
            until=until,
            limit=limit,
        )

        def op(conn: sqlite3.Connection) -> list[DeadLetterRecord]:
            return [dead_letter_from_row(r) for r in conn.execute(sql, args).fetchall()]

        return await self.db.read(op)

    async def counts(self, agent: str | None = None) -> dict[str, int]:
        """Events per state, plus ``dead_letters``."""
        where, args = filters(agent=agent)

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            out = {s.value: 0 for s in EventState}
            for state, n in conn.execute(
                f"SELECT state, COUNT(*) FROM as_events {where} GROUP BY state", args
            ):
                out[state] = n
            out["dead_letters"] = conn.execute(
                f"SELECT COUNT(*) FROM as_dead_letters {where}", args
            ).fetchone()[0]
            out["dead_letters_open"] = conn.execute(
                f"SELECT COUNT(*) FROM as_dead_letters {where} "
                f"{'AND' if where else 'WHERE'} status IN ('dead', 'redriven')",
                args,
            ).fetchone()[0]
            out["parked"] = conn.execute(
                f"SELECT COUNT(*) FROM as_parked {where}", args
            ).fetchone()[0]
            out["outbox_pending"] = conn.execute(
                f"SELECT COUNT(*) FROM as_outbox {where} "
                f"{'AND' if where else 'WHERE'} published_at IS NULL",
                args,
            ).fetchone()[0]
            return out

        return await self.db.read(op)


def from_url(url: str, backends: Backends) -> SqliteStore:
    """A SQLite journal for a ``sqlite://`` URL, sharing the process's database thread."""
    from agentstream.backends import sqlite_path

    return SqliteStore(backends.sqlite(sqlite_path(url)))
