"""Admission-control buckets in a PostgreSQL table, shared by workers on many hosts.

The same arithmetic as every bucket store (:func:`agentstream.llm.buckets.decide`), run inside
one transaction that locks the bucket rows (``SELECT ... FOR UPDATE``, in name order so two
takers of overlapping buckets cannot deadlock). Missing rows are created full. The table lives
in the journal's schema; the store keeps a small connection pool of its own.

Times are wall-clock seconds from the caller (every process keeps its clock in sync, as leases
already require).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import sql

from agentstream.failures import ConfigurationError, TransientError
from agentstream.journal.shared import PostgresHome
from agentstream.llm.buckets import BucketSpec, BucketState, Take, decide

__all__ = ["PostgresBuckets"]

T = TypeVar("T")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]


class PostgresBuckets:
    """Buckets in ``<schema>.as_limit_buckets``.

    Args:
        conninfo: PostgreSQL connection string (the journal's).
        schema: Schema of the journal (created if missing).
        timeout_s: Longest wait for a pooled connection.
    """

    def __init__(
        self, conninfo: str, *, schema: str = "agentstream", timeout_s: float = 10.0
    ) -> None:
        if not schema.replace("_", "").isalnum():
            raise ConfigurationError(f"invalid schema name {schema!r}")
        self.schema = schema
        self._home = PostgresHome(conninfo, schema)
        self._timeout_s = timeout_s
        self._table = sql.Identifier(schema, "as_limit_buckets")
        self._pool: psycopg_pool.AsyncConnectionPool[Conn] = psycopg_pool.AsyncConnectionPool(
            conninfo, min_size=1, max_size=4, open=False, name=f"agentstream-limits-{schema}"
        )

    async def _run(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        try:
            async with (
                self._pool.connection(timeout=self._timeout_s) as conn,
                conn.transaction(),
            ):
                return await fn(conn)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise TransientError(f"limit buckets unavailable: {exc}") from exc

    async def open(self) -> None:
        """Open the pool and create the table (and the schema, if this worker is first)."""
        await self._pool.open(wait=True, timeout=self._timeout_s)

        async def create(conn: Conn) -> None:
            # under the journal's migration lock, with every other schema object
            await self._home.create_tables(
                conn,
                [
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, "
                        "level DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL, "
                        "blocked_until DOUBLE PRECISION NOT NULL DEFAULT 0)"
                    ).format(self._table)
                ],
            )

        await self._run(create)

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def _locked(
        self, conn: Conn, specs: Sequence[BucketSpec], now: float
    ) -> dict[str, BucketState]:
        names = sorted({s.name for s in specs})
        capacity = {s.name: s.capacity for s in specs}
        await conn.cursor().executemany(
            sql.SQL(
                "INSERT INTO {} (name, level, updated) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING"
            ).format(self._table),
            [(n, capacity[n], now) for n in names],
        )
        cur = await conn.execute(
            sql.SQL(
                "SELECT name, level, updated, blocked_until FROM {} WHERE name = ANY(%s) "
                "ORDER BY name FOR UPDATE"
            ).format(self._table),
            (names,),
        )
        return {row[0]: BucketState(row[1], row[2], row[3]) for row in await cur.fetchall()}

    async def _save(self, conn: Conn, states: dict[str, BucketState]) -> None:
        await conn.cursor().executemany(
            sql.SQL(
                "UPDATE {} SET level = %s, updated = %s, blocked_until = %s WHERE name = %s"
            ).format(self._table),
            [(s.level, s.updated, s.blocked_until, name) for name, s in states.items()],
        )

    async def take(self, takes: Sequence[Take], now: float) -> float:
        """Take every amount or none, atomically across hosts."""

        async def op(conn: Conn) -> float:
            states = await self._locked(conn, [t.bucket for t in takes], now)
            ordered = [states[t.bucket.name] for t in takes]
            wait = decide(ordered, takes, now)
            if wait == 0.0:
                await self._save(conn, states)
            return wait

        return await self._run(op)

    async def _update(
        self, specs: Sequence[BucketSpec], now: float, change: Callable[[BucketState, int], None]
    ) -> None:
        async def op(conn: Conn) -> None:
            states = await self._locked(conn, specs, now)
            for i, spec in enumerate(specs):
                state = states[spec.name]
                state.refill(spec, now)
                change(state, i)
            await self._save(conn, states)

        await self._run(op)

    async def give(self, gives: Sequence[Take], now: float) -> None:
        """Return amounts."""
        if not gives:
            return

        def change(state: BucketState, i: int) -> None:
            state.level = min(gives[i].bucket.capacity, state.level + gives[i].amount)

        await self._update([g.bucket for g in gives], now, change)

    async def block(self, bucket: BucketSpec, until: float, now: float) -> None:
        """Block a bucket until ``until`` for every process."""

        def change(state: BucketState, i: int) -> None:
            state.level = min(state.level, 0.0)
            state.blocked_until = max(state.blocked_until, until)

        await self._update([bucket], now, change)

    async def cap(self, bucket: BucketSpec, level: float, now: float) -> None:
        """Lower a bucket's level for every process."""

        def change(state: BucketState, i: int) -> None:
            state.level = min(state.level, level)

        await self._update([bucket], now, change)
