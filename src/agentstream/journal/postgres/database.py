"""The PostgreSQL journal's connection layer: URL options, the pool, retries and migrations.

:class:`PostgresDatabase` is the base of :class:`~agentstream.journal.postgres.PostgresStore`:
it owns a :class:`psycopg_pool.AsyncConnectionPool` of autocommit connections (a single
statement is its own transaction, one round trip; multi-statement operations open a
transaction explicitly) and runs every operation through :meth:`PostgresDatabase.run`, which
retries deadlocks and serialization failures and turns an unreachable server into a
:class:`~agentstream.failures.TransientError`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg_pool
from psycopg import errors

from agentstream.failures import ConfigurationError, TransientError
from agentstream.journal.outage import JournalOutage, quiet_pool_reconnects
from agentstream.journal.postgres.schema import migrate, quote_ident

__all__ = ["Conn", "JournalUnavailable", "PostgresDatabase", "parse_postgres_url"]

T = TypeVar("T")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]

DEFAULT_SCHEMA = "agentstream"
DEFAULT_POOL_SIZE = 8
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_RETRIES = 6


class JournalUnavailable(ConfigurationError):
    """The journal's server could not be reached or refused us when it was opened."""


def parse_postgres_url(url: str) -> tuple[str, str, int]:
    """Split a journal URL into ``(conninfo, schema, pool_size)``.

    ``schema`` and ``pool_size`` are agentstream's own query options; every other option
    (``sslmode``, ``connect_timeout``, ...) stays in the connection string for libpq.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {k: v for k, v in query if k in ("schema", "pool_size")}
    rest = [(k, v) for k, v in query if k not in options]
    try:
        pool_size = int(options.get("pool_size", DEFAULT_POOL_SIZE))
    except ValueError as exc:
        raise ConfigurationError(f"{url!r}: pool_size must be an integer") from exc
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(rest)))
    return conninfo, options.get("schema", DEFAULT_SCHEMA), pool_size


class PostgresDatabase:
    """A pool of connections to one journal schema.

    Args:
        conninfo: libpq connection string or URL (without agentstream's options).
        schema: Schema holding the journal's tables (created by :meth:`open`).
        pool_size: Most connections this process keeps open.
        clock: Wall-clock source in seconds; every time written to the journal comes from it.
        timeout_s: Longest wait for a pooled connection.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        pool_size: int = DEFAULT_POOL_SIZE,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 30.0,
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ConfigurationError(f"invalid schema name {schema!r}")
        if pool_size < 1:
            raise ConfigurationError(f"pool_size must be at least 1, not {pool_size}")
        self.conninfo = conninfo
        self.schema = schema
        self.pool_size = pool_size
        self._clock = clock
        self._timeout_s = timeout_s
        self._quoted = quote_ident(schema)
        self._pool: psycopg_pool.AsyncConnectionPool[Conn] | None = None
        self._users = 0
        self._opening: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(schema={self.schema!r})"

    def q(self, text: str) -> str:
        """``text`` with ``{s}`` replaced by the quoted schema name."""
        return text.replace("{s}", self._quoted)

    async def open(self) -> None:
        """Open the pool and apply pending migrations (safe with many openers at once).

        Reference-counted like the SQLite journal: users sharing one store object (a worker,
        the outbox relay, a test harness) call ``open``/``close`` in pairs, and the pool
        closes with the last of them.
        """
        self._opening = self._opening or asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                await self._probe()
                pool: psycopg_pool.AsyncConnectionPool[Conn] = psycopg_pool.AsyncConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=self.pool_size,
                    # No server-side prepared statements: a generic plan, made before the
                    # tables have statistics, probes the wrong index for a batch's rows (and
                    # unprepared statements also work behind a transaction-mode pgbouncer).
                    kwargs={"autocommit": True, "prepare_threshold": None},
                    open=False,
                    name=f"agentstream-journal-{self.schema}",
                )
                quiet_pool_reconnects()
                try:
                    await pool.open(wait=True, timeout=self._timeout_s)
                    async with pool.connection(timeout=self._timeout_s) as conn:
                        await migrate(conn, self.schema, self._clock())
                except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
                    await pool.close()
                    raise JournalOutage(f"PostgreSQL journal unavailable: {exc}") from exc
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
            self._users += 1

    async def _probe(self) -> None:
        """Connect once, bounded, so a wrong URL fails at once with the server's own words.

        The pool would retry in the background and hide "database ... does not exist" in a
        warning until its timeout.

        Raises:
            JournalUnavailable: The server cannot be reached or refused the connection.
        """
        options: dict[str, Any] = {}
        if "connect_timeout" not in self.conninfo:
            options["connect_timeout"] = 5
        try:
            conn = await psycopg.AsyncConnection.connect(self.conninfo, **options)
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split())
            raise JournalUnavailable(f"cannot open the PostgreSQL journal: {reason}") from exc
        await conn.close()

    async def close(self) -> None:
        """Close the pool once its last user has closed."""
        self._users = max(0, self._users - 1)
        if self._users == 0 and self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def run(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` on a pooled connection, retrying deadlocks and serialization failures.

        ``fn`` must be safe to run again: a retried attempt's transaction was rolled back.
        """
        for attempt in range(_RETRIES):
            if self._pool is None:
                raise RuntimeError(f"{self!r} is not open")
            try:
                async with self._pool.connection(timeout=self._timeout_s) as conn:
                    return await fn(conn)
            except (errors.DeadlockDetected, errors.SerializationFailure) as exc:
                if attempt == _RETRIES - 1:
                    raise TransientError(f"journal contention: {exc}") from exc
                await asyncio.sleep(0.005 * 2**attempt)
            except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
                raise JournalOutage(f"PostgreSQL journal unavailable: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def run_many(
        self, conn: Conn, sql: str, params: Sequence[Sequence[Any]]
    ) -> list[tuple[Any, ...]]:
        """Run one statement per parameter row, pipelined; return every row they returned."""
        if not params:
            return []
        rows: list[tuple[Any, ...]] = []
        cur = conn.cursor()
        await cur.executemany(self.q(sql), params, returning=True)
        while True:
            rows.extend(await cur.fetchall() if cur.pgresult and cur.pgresult.ntuples else [])
            if not cur.nextset():
                return rows

    async def fetchall(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        """Rows of one statement (``{s}`` in ``sql`` is the schema)."""

        async def op(conn: Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(self.q(sql), args)
            return await cur.fetchall()

        return await self.run(op)

    async def fetchone(self, sql: str, args: Any = None) -> tuple[Any, ...] | None:
        """The first row of one statement, if any."""
        rows = await self.fetchall(sql, args)
        return rows[0] if rows else None

    async def execute(self, sql: str, args: Any = None) -> int:
        """Run one statement; return the rows it changed."""

        async def op(conn: Conn) -> int:
            cur = await conn.execute(self.q(sql), args)
            return cur.rowcount

        return await self.run(op)
