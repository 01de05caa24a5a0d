"""The PostgreSQL journal: one database shared by worker processes on many hosts.

The hot path (claims, steps, completion) lives here; operator operations are in
:mod:`agentstream.journal.postgres_ops`, the schema in :mod:`agentstream.journal.postgres_schema`.
Semantics are those of :class:`~agentstream.journal.sqlite.SqliteStore`, proven by the same
conformance suite.

Concurrency: transactions run at READ COMMITTED. A claim inserts unknown events with
``INSERT ... ON CONFLICT DO NOTHING`` (a concurrent inserter of the same id waits for the first
and then sees a conflict) and locks known ones with ``SELECT ... FOR UPDATE`` in id order before
deciding, so exactly one claimer wins. Every write that carries an epoch is conditional on
``state = 'claimed' AND epoch = %s`` in the same statement that writes, so a zombie's late
write finds no row and raises :class:`~agentstream.failures.FencedError`. Those statements
address one row by its full primary key and spell the state test ``(state = 'claimed') IS
TRUE``, which no index matches: a fresh journal has no statistics, and the planner would
otherwise scan the ``(agent, state)`` index over every in-flight event. Batches send one such
statement per row, pipelined (one round trip), in one transaction. Row locks, not
SERIALIZABLE: the decisions are per row, so locking them is enough and nothing is retried
under load; the rare deadlock between batches is retried by
:meth:`~agentstream.journal.postgres_db.PostgresDatabase.run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentstream.event import OutgoingRecord
from agentstream.failures import FencedError
from agentstream.journal.base import (
    Claim,
    ClaimStatus,
    Completion,
    EventMeta,
    EventState,
    FailureRecord,
    OutboxRow,
    StepRecord,
)
from agentstream.journal.postgres_db import (
    Conn,
    parse_postgres_url,
)
from agentstream.journal.postgres_ops import PostgresOperations
from agentstream.journal.postgres_rows import (
    COMPLETE,
    COMPLETE_EFFECTS,
    INSERT_FRESH,
    INSERT_OUTBOX,
    OUTBOX_COLUMNS,
    fenced,
    fresh_arrays,
    outbox_arrays,
    pg_where,
)
from agentstream.journal.queries import claimable_outbox
from agentstream.journal.sqlite_ops import dumps
from agentstream.journal.sqlite_rows import outbox_from_row, step_from_row
from agentstream.journal.sqlite_schema import STEP_COLUMNS

if TYPE_CHECKING:
    from agentstream.backends import Backends

__all__ = ["PostgresStore", "from_url"]


def _effects(
    agent: str, now: float, batch: dict[tuple[str, int], Completion], done: set[tuple[str, int]]
) -> dict[str, Any]:
    """Parameters of :data:`COMPLETE_EFFECTS` for the completed items of a batch."""
    completed = [(key[0], c) for key, c in batch.items() if key in done]
    outputs = [(e, seq, rec) for e, c in completed for seq, rec in enumerate(c.outputs)]
    versioned = [(c.entity, c.version) for _, c in completed if c.entity and c.version is not None]
    return {
        "agent": agent,
        "now": now,
        "ids": [e for e, _ in completed],
        "o_ids": [o[0] for o in outputs],
        "o_seqs": [o[1] for o in outputs],
        "entities": [v[0] for v in versioned],
        "versions": [v[1] for v in versioned],
    } | outbox_arrays([o[2] for o in outputs])


class PostgresStore(PostgresOperations):
    """Journal in a PostgreSQL schema, shared by any number of worker processes and hosts.

    Args:
        conninfo: libpq connection string or URL (see :func:`from_url` for journal URLs).
        schema: Schema of the journal's tables, created and migrated by :meth:`open`.
        pool_size: Most connections this process opens.
        clock: Wall-clock source in seconds (injectable for tests); every time written to the
            journal comes from it, never from the server.
        timeout_s: Longest wait for a pooled connection.
    """

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
        if not requests:
            return []
        now = self._clock()
        until = now + lease_s
        first: dict[str, EventMeta] = {}
        for event_id, meta in requests:
            first.setdefault(event_id, meta)
        seen = {event_id: 0 for event_id in first}
        for event_id, _ in requests:
            seen[event_id] += 1

        async def op(conn: Conn) -> dict[str, Claim]:
            async with conn.transaction():
                cur = await conn.execute(
                    self.q(INSERT_FRESH),
                    {"agent": agent, "owner": owner, "until": until, "now": now}
                    | fresh_arrays(first),
                )
                fresh = {row[0] for row in await cur.fetchall()}
                answers = {e: Claim(ClaimStatus.CLAIMED, 1, 1, until) for e in fresh}
                known = sorted(set(first) - fresh)
                if known:
                    answers |= await self._claim_known(conn, agent, known, owner, now, until)
                # a settled event counts every delivery, repeats within the batch included
                settled = [
                    (e, seen[e])
                    for e, c in answers.items()
                    if c.status in (ClaimStatus.COMPLETED, ClaimStatus.DEAD)
                ]
                if settled:
                    await self.run_many(
                        conn,
                        "UPDATE {s}.as_events SET deliveries = deliveries + %s "
                        "WHERE agent = %s AND event_id = %s",
                        [(n, agent, e) for e, n in sorted(settled)],
                    )
                return answers

        answers = await self.run(op)
        out: list[Claim] = []
        answered: set[str] = set()
        for event_id, _ in requests:
            claim = answers[event_id]
            if event_id in answered and claim.status == ClaimStatus.CLAIMED:
                claim = Claim(ClaimStatus.BUSY, claim.epoch, claim.attempts, claim.lease_until)
            answered.add(event_id)
            out.append(claim)
        return out

    async def _claim_known(
        self, conn: Conn, agent: str, ids: list[str], owner: str, now: float, until: float
    ) -> dict[str, Claim]:
        """Decide claims on events that have rows, holding their row locks."""
        rows = await self.run_many(
            conn,
            "SELECT event_id, state, epoch, lease_until, attempts FROM {s}.as_events "
            "WHERE agent = %s AND event_id = %s FOR UPDATE",
            [(agent, event_id) for event_id in ids],  # sorted: locks are taken in id order
        )
        answers: dict[str, Claim] = {}
        granted: list[tuple[str, int, int]] = []
        for event_id, state, epoch, lease_until, attempts in rows:
            if state in (EventState.COMPLETED, EventState.DEAD):
                status = (
                    ClaimStatus.COMPLETED if state == EventState.COMPLETED else ClaimStatus.DEAD
                )
                answers[event_id] = Claim(status, epoch, attempts)
            elif lease_until > now:
                answers[event_id] = Claim(ClaimStatus.BUSY, epoch, attempts, lease_until)
            else:
                granted.append((event_id, epoch + 1, attempts + 1))
        for event_id in ids:
            # pruned between our insert's conflict and the lock: ask again, it is new again
            answers.setdefault(event_id, Claim(ClaimStatus.BUSY, 0, 0, now))
        if not granted:
            return answers
        await self.run_many(
            conn,
            "UPDATE {s}.as_events SET state = 'claimed', epoch = %s, owner = %s, "
            "lease_until = %s, attempts = %s, deliveries = deliveries + 1, updated_at = %s "
            "WHERE agent = %s AND event_id = %s",
            [(epoch, owner, until, attempts, now, agent, e) for e, epoch, attempts in granted],
        )
        cur = await conn.execute(
            self.q(
                f"SELECT event_id, {STEP_COLUMNS} FROM {{s}}.as_steps WHERE agent = %s "
                "AND event_id = ANY(%s::text[]) ORDER BY event_id, seq"
            ),
            (agent, [g[0] for g in granted]),
        )
        steps: dict[str, list[StepRecord]] = {}
        for row in await cur.fetchall():
            steps.setdefault(row[0], []).append(step_from_row(row[1:]))
        for event_id, epoch, attempts in granted:
            answers[event_id] = Claim(
                ClaimStatus.CLAIMED, epoch, attempts, until, tuple(steps.get(event_id, ()))
            )
        return answers

    async def renew(
        self, agent: str, claims: Sequence[tuple[str, int]], lease_s: float
    ) -> set[str]:
        """Extend leases; return the event ids whose claim was lost."""
        if not claims:
            return set()
        until = self._clock() + lease_s

        async def op(conn: Conn) -> set[str]:
            rows = await self.run_many(
                conn,
                "UPDATE {s}.as_events SET lease_until = %s WHERE agent = %s AND event_id = %s "
                "AND epoch = %s AND (state = 'claimed') IS TRUE RETURNING event_id",
                [(until, agent, event_id, epoch) for event_id, epoch in sorted(claims)],
            )
            return {row[0] for row in rows}

        kept = await self.run(op)
        return {event_id for event_id, _ in claims if event_id not in kept}

    async def release(
        self, agent: str, event_id: str, epoch: int, *, not_before: float = 0.0
    ) -> None:
        """Give a claim back; nobody may claim it again before ``not_before``."""
        now = self._clock()

        async def op(conn: Conn) -> None:
            await conn.execute(
                self.q(
                    "UPDATE {s}.as_events SET state = 'pending', owner = NULL, lease_until = %s, "
                    "updated_at = %s WHERE agent = %s AND event_id = %s AND epoch = %s "
                    "AND (state = 'claimed') IS TRUE"
                ),
                (not_before, now, agent, event_id, epoch),
            )

        await self.run(op)

    async def write_step(self, agent: str, event_id: str, epoch: int, step: StepRecord) -> None:
        """Insert or replace one step, fenced by epoch in the same statement."""
        now = self._clock()
        params = (
            now,
            agent,
            event_id,
            epoch,
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
        )
        updates = ", ".join(
            f"{c.strip()} = EXCLUDED.{c.strip()}" for c in STEP_COLUMNS.split(",")[1:]
        )

        async def op(conn: Conn) -> None:
            cur = await conn.execute(
                self.q(
                    "WITH fence AS (UPDATE {s}.as_events SET updated_at = %s WHERE agent = %s "
                    "AND event_id = %s AND epoch = %s AND (state = 'claimed') IS TRUE RETURNING 1) "
                    f"INSERT INTO {{s}}.as_steps (agent, event_id, {STEP_COLUMNS}) "
                    "SELECT %s::text, %s::text, %s::int, %s::text, %s::text, %s::text, %s::text, "
                    "%s::text, %s::text, %s::text, %s::text, %s::bigint, %s::float8, %s::float8 "
                    "WHERE EXISTS (SELECT 1 FROM fence) "
                    f"ON CONFLICT (agent, event_id, seq) DO UPDATE SET {updates} RETURNING 1"
                ),
                params,
            )
            if await cur.fetchone() is None:
                raise fenced(agent, event_id, epoch)

        await self.run(op)

    async def complete(self, agent: str, event_id: str, epoch: int, completion: Completion) -> None:
        """Complete the event, enqueue outputs and record the entity version, atomically."""
        [error] = await self.complete_many(agent, [(event_id, epoch, completion)])
        if error is not None:
            raise error

    async def complete_many(
        self, agent: str, items: Sequence[tuple[str, int, Completion]]
    ) -> list[FencedError | None]:
        """Complete several events in one transaction; a FencedError for each stale claim."""
        if not items:
            return []
        now = self._clock()
        # SQLite completes the first item of an event whose epoch is current; distinct
        # (event, epoch) pairs give the same answer, since only one epoch can be current.
        batch: dict[tuple[str, int], Completion] = {}
        for event_id, epoch, completion in items:
            batch.setdefault((event_id, epoch), completion)
        fences = [
            (c.outcome, dumps(c.result), now, now, agent, event_id, epoch)
            for (event_id, epoch), c in sorted(batch.items(), key=lambda kv: kv[0])
        ]

        async def op(conn: Conn) -> set[tuple[str, int]]:
            async with conn.transaction():
                rows = await self.run_many(conn, COMPLETE, fences)
                done = {(row[0], int(row[1])) for row in rows}
                if done:
                    await conn.execute(self.q(COMPLETE_EFFECTS), _effects(agent, now, batch, done))
                return done

        done = await self.run(op)
        errors: list[FencedError | None] = []
        for event_id, epoch, _ in items:
            if (event_id, epoch) in done:
                done.discard((event_id, epoch))  # a repeat of the item in this batch is stale
                errors.append(None)
            else:
                errors.append(fenced(agent, event_id, epoch))
        return errors

    async def record_failure(
        self, agent: str, event_id: str, epoch: int, failure: FailureRecord
    ) -> None:
        """Append a failed attempt, fenced by epoch in the same statement."""
        now = self._clock()

        async def op(conn: Conn) -> None:
            cur = await conn.execute(
                self.q(
                    "WITH fence AS (UPDATE {s}.as_events SET updated_at = %s WHERE agent = %s "
                    "AND event_id = %s AND epoch = %s AND (state = 'claimed') IS TRUE RETURNING 1) "
                    "INSERT INTO {s}.as_failures (agent, event_id, attempt, failure_class, "
                    "error_type, message, traceback, at) SELECT %s::text, %s::text, %s::int, "
                    "%s::text, %s::text, %s::text, %s::text, %s::float8 "
                    "WHERE EXISTS (SELECT 1 FROM fence) RETURNING 1"
                ),
                (
                    now,
                    agent,
                    event_id,
                    epoch,
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
            if await cur.fetchone() is None:
                raise fenced(agent, event_id, epoch)

        await self.run(op)

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

        async def op(conn: Conn) -> int:
            async with conn.transaction():
                cur = await conn.execute(
                    self.q(
                        "UPDATE {s}.as_events SET state = 'dead', owner = NULL, lease_until = 0, "
                        "outcome = %s, completed_at = %s, updated_at = %s WHERE agent = %s "
                        "AND event_id = %s AND epoch = %s AND (state = 'claimed') IS TRUE "
                        "RETURNING event_key"
                    ),
                    (failure_class, now, now, agent, event_id, epoch),
                )
                row = await cur.fetchone()
                if row is None:
                    raise fenced(agent, event_id, epoch)
                await self.lock_key(conn, agent, row[0])
                await conn.execute(
                    self.q(
                        "UPDATE {s}.as_dead_letters SET status = 'superseded' WHERE agent = %s "
                        "AND event_id = %s AND status IN ('dead', 'redriven')"
                    ),
                    (agent, event_id),
                )
                cur = await conn.execute(
                    self.q(
                        "INSERT INTO {s}.as_dead_letters (agent, event_id, failure_class, "
                        "event_key, created_at, status, envelope) "
                        "VALUES (%s, %s, %s, %s, %s, 'dead', %s) RETURNING id"
                    ),
                    (agent, event_id, failure_class, row[0], now, dumps(envelope)),
                )
                inserted = await cur.fetchone()
                assert inserted is not None
                if outputs:
                    await conn.execute(
                        self.q(INSERT_OUTBOX),
                        {"agent": agent, "event_id": event_id, "now": now} | outbox_arrays(outputs),
                    )
                return int(inserted[0])

        return await self.run(op)

    async def claim_outbox(self, owner: str, *, limit: int, lease_s: float) -> list[OutboxRow]:
        """Lease up to ``limit`` unpublished rows whose relay lease has lapsed, oldest first.

        Rows another relay is leasing right now are skipped, not waited for.
        """
        now = self._clock()
        sql = self.q(
            "UPDATE {s}.as_outbox SET relay_owner = %s, relay_lease = %s WHERE id IN ("
            + pg_where(claimable_outbox("{s}.", "o.id"))
            + f") RETURNING {OUTBOX_COLUMNS}"
        )

        async def op(conn: Conn) -> list[tuple[Any, ...]]:
            async with conn.transaction():
                # One claim at a time per journal: the lane check reads rows other relays may
                # be claiming, so concurrent claims could both pass it.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"agentstream.outbox:{self.schema}",),
                )
                cur = await conn.execute(sql, (owner, now + lease_s, now, owner, now, owner, limit))
                return await cur.fetchall()

        rows = await self.run(op)
        return sorted((outbox_from_row(r) for r in rows), key=lambda r: r.id)

    async def mark_published(self, ids: Sequence[int]) -> None:
        """Record publication of outbox rows."""
        if not ids:
            return
        await self.execute(
            "UPDATE {s}.as_outbox SET published_at = %s WHERE id = ANY(%s::bigint[])",
            (self._clock(), list(ids)),
        )

    async def defer_outbox(self, owner: str, ids: Sequence[int], delay_s: float) -> None:
        """Release ``owner``'s leased, unpublished rows; no relay claims them for ``delay_s``."""
        if not ids:
            return
        await self.execute(
            "UPDATE {s}.as_outbox SET relay_owner = NULL, relay_lease = %s "
            "WHERE id = ANY(%s::bigint[]) AND relay_owner = %s AND published_at IS NULL",
            (self._clock() + delay_s, list(ids), owner),
        )


def from_url(url: str, backends: Backends | None = None) -> PostgresStore:
    """A PostgreSQL journal for a ``postgresql://`` (or ``postgres://``) URL.

    ``?schema=NAME`` picks the schema (default ``agentstream``), ``?pool_size=N`` the most
    connections per process (default 8); other query options go to libpq.
    """
    conninfo, schema, pool_size = parse_postgres_url(url)
    return PostgresStore(conninfo, schema=schema, pool_size=pool_size)
