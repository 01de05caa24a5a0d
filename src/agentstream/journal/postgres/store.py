"""The PostgreSQL journal: one database shared by worker processes on many hosts.

The hot path (claims, steps, completion, outbox) lives here; operator operations are in
:mod:`agentstream.journal.postgres.operations`, the schema in
:mod:`agentstream.journal.postgres.schema`, the decisions in :mod:`agentstream.journal.lifecycle`
and the reads in :mod:`agentstream.journal.sql`, shared with the SQLite journal; the same
conformance suite proves both.

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
:meth:`~agentstream.journal.postgres.database.PostgresDatabase.run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentstream.failures import FencedError
from agentstream.journal import lifecycle
from agentstream.journal.postgres.blobs import PostgresBlobs, put_blobs
from agentstream.journal.postgres.database import Conn, parse_postgres_url
from agentstream.journal.postgres.statements import (
    COMPLETE,
    COMPLETE_EFFECTS,
    INSERT_FRESH,
    INSERT_OUTBOX,
    fresh_arrays,
    outbox_arrays,
    pg_where,
)
from agentstream.journal.postgres.waits import PostgresWaits
from agentstream.journal.queries import claimable_outbox
from agentstream.journal.records import (
    Claim,
    ClaimStatus,
    Completion,
    EventState,
    FailureRecord,
    OutboxRow,
    StepRecord,
)
from agentstream.journal.rows import (
    OUTBOX_COLUMNS,
    STEP_COLUMNS,
    dumps,
    failure_values,
    outbox_from_row,
    step_from_row,
    step_values,
)
from agentstream.journal.shared import PostgresHome
from agentstream.journal.sql import ClaimBatch, CompletionBatch, DeadLetterWrite, SqlJournal
from agentstream.journal.wait_reads import WaitReads
from agentstream.journal.wait_writes import WaitWrites

if TYPE_CHECKING:
    from agentstream.sqlite_db import SqliteFiles

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


class PostgresStore(PostgresWaits, PostgresBlobs, WaitWrites, WaitReads, SqlJournal):
    """Journal in a PostgreSQL schema, shared by any number of worker processes and hosts.

    Args:
        conninfo: libpq connection string or URL (see :func:`from_url` for journal URLs).
        schema: Schema of the journal's tables, created and migrated by :meth:`open`.
        pool_size: Most connections this process opens.
        clock: Wall-clock source in seconds (injectable for tests); every time written to the
            journal comes from it, never from the server.
        timeout_s: Longest wait for a pooled connection.
    """

    prefix = "{s}."
    percent = "%%"

    def shared_home(self) -> PostgresHome:
        """Shared state lives in this journal's database and schema."""
        return PostgresHome(self.conninfo, self.schema)

    async def select(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query (see :class:`~agentstream.journal.sql.SqlJournal`)."""
        return await self.fetchall(pg_where(sql), tuple(args))

    async def claim_batch(self, batch: ClaimBatch) -> dict[str, Claim]:
        """Decide and write a batch of claims in one transaction."""
        agent, owner, now, until = batch.agent, batch.owner, batch.now, batch.until
        first, seen = batch.metas, batch.asked

        async def op(conn: Conn) -> dict[str, Claim]:
            async with conn.transaction():
                arrays, blobs = fresh_arrays(first)
                await put_blobs(conn, self.schema, blobs, now)
                cur = await conn.execute(
                    self.q(INSERT_FRESH),
                    {"agent": agent, "owner": owner, "until": until, "now": now} | arrays,
                )
                fresh = {row[0] for row in await cur.fetchall()}
                answers = {e: lifecycle.first_claim(until) for e in fresh}
                known = sorted(set(first) - fresh)
                if known:
                    answers |= await self._claim_known(conn, agent, known, owner, now, until)
                # a settled event counts every delivery, repeats within the batch included
                settled = [(e, seen[e]) for e, c in answers.items() if lifecycle.counts_delivery(c)]
                if settled:
                    await self.run_many(
                        conn,
                        "UPDATE {s}.as_events SET deliveries = deliveries + %s "
                        "WHERE agent = %s AND event_id = %s",
                        [(n, agent, e) for e, n in sorted(settled)],
                    )
                return answers

        return await self.run(op)

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
            known = lifecycle.ClaimRow(EventState(state), epoch, lease_until, attempts)
            answers[event_id] = claim = lifecycle.decide_claim(known, now=now, until=until)
            if claim.status == ClaimStatus.CLAIMED:
                granted.append((event_id, claim.epoch, claim.attempts))
        for event_id in ids:
            # pruned between our insert's conflict and the lock: ask again, it is new again
            answers.setdefault(event_id, lifecycle.vanished(now))
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
        """Extend leases to at least ``lease_s`` from now (never shorten); return lost ids."""
        if not claims:
            return set()
        until = self._clock() + lease_s

        async def op(conn: Conn) -> set[str]:
            rows = await self.run_many(
                conn,
                "UPDATE {s}.as_events SET lease_until = GREATEST(lease_until, %s) "
                "WHERE agent = %s AND event_id = %s AND epoch = %s "
                "AND (state = 'claimed') IS TRUE RETURNING event_id",
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
        params = (now, agent, event_id, epoch, *step_values(agent, event_id, epoch, step))
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
                    "%s::text, %s::text, %s::text, %s::text, %s::bigint, %s::float8, %s::float8, "
                    "%s::bytea "
                    "WHERE EXISTS (SELECT 1 FROM fence) "
                    f"ON CONFLICT (agent, event_id, seq) DO UPDATE SET {updates} RETURNING 1"
                ),
                params,
            )
            if await cur.fetchone() is None:
                raise lifecycle.fenced(agent, event_id, epoch)

        await self.run(op)

    async def complete_batch(self, completions: CompletionBatch) -> list[FencedError | None]:
        """Complete the live claims of a batch in one transaction."""
        agent, items, now = completions.agent, completions.items, completions.now
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
        return lifecycle.settle_batch(agent, items, done)

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
                (now, agent, event_id, epoch, *failure_values(agent, event_id, failure, now)),
            )
            if await cur.fetchone() is None:
                raise lifecycle.fenced(agent, event_id, epoch)

        await self.run(op)

    async def write_dead_letter(self, write: DeadLetterWrite) -> int:
        """Mark the event dead with its envelope and DLQ records, in one transaction."""
        agent, event_id, epoch, now = write.agent, write.event_id, write.epoch, write.now
        failure_class, outputs = write.failure_class, write.outputs

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
                    raise lifecycle.fenced(agent, event_id, epoch)
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
                    (agent, event_id, failure_class, row[0], now, dumps(write.envelope)),
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


def from_url(url: str, backends: SqliteFiles | None = None) -> PostgresStore:
    """A PostgreSQL journal for a ``postgresql://`` (or ``postgres://``) URL.

    ``?schema=NAME`` picks the schema (default ``agentstream``), ``?pool_size=N`` the most
    connections per process (default 8); other query options go to libpq.
    """
    conninfo, schema, pool_size = parse_postgres_url(url)
    return PostgresStore(conninfo, schema=schema, pool_size=pool_size)
