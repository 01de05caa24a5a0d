"""Circuit-breaker state: the pure transitions and where the state lives.

One breaker per model on each provider endpoint (its name is ``ENDPOINT/MODEL``), in one of
three states::

    closed ──(threshold failures in a row)──▶ open ──(open_until passed, a call asks)──▶ half_open
      ▲                                        ▲                                          │
      └──────────────(the probe answered)──────┼──────────────────────────────────────────┘
                                               └──────────(the probe failed)──────────────┘

Closed lets every call through; open lets none; half-open lets one call through, the probe,
whose answer closes the breaker (or whose failure opens it again, for longer). Every
transition is a pure function of the stored :class:`BreakerState` (:func:`on_failure`,
:func:`on_success`, :func:`on_admit`), run by a :class:`BreakerStore` inside one atomic
read-modify-write, so every worker process of a journal sees one breaker per model:

* :class:`LocalBreakers`: this process only;
* :class:`SqliteBreakers`: a table in the SQLite journal file;
* :class:`PostgresBreakers`: a table in the PostgreSQL journal's schema.

Times are wall-clock seconds from the caller, as for leases and rate-limit buckets.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from agentstream.failures import ConfigurationError, TransientError
from agentstream.journal.shared import PostgresHome

if TYPE_CHECKING:
    import psycopg

    from agentstream.sqlite_db import SqliteDatabase

__all__ = [
    "BreakerPolicy",
    "BreakerState",
    "BreakerStatus",
    "BreakerStore",
    "LocalBreakers",
    "PostgresBreakers",
    "SqliteBreakers",
    "on_admit",
    "on_failure",
    "on_success",
]

R = TypeVar("R")


class BreakerStatus(enum.StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    """When a breaker opens and for how long.

    Attributes:
        threshold: Failures in a row (connection failures, timeouts, 5xx) that open it.
        window_s: A failure older than this no longer counts toward the threshold.
        open_s: How long it stays open the first time; each failed probe doubles it.
        max_open_s: Longest it stays open between probes.
        probe_timeout_s: A probe not answered by then (its worker died) is handed to another
            call.
    """

    threshold: int = 5
    window_s: float = 30.0
    open_s: float = 2.0
    max_open_s: float = 30.0
    probe_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ConfigurationError("BreakerPolicy.threshold must be at least 1")


@dataclass(slots=True)
class BreakerState:
    """One breaker's stored state.

    Attributes:
        status: Closed, open or half-open.
        failures: Failures in a row while closed.
        last_failure: When the last failure was recorded.
        open_until: While open, no call before this time (then one probe).
        probe_until: While half-open, when the probe is given up as lost.
        trips: Openings since it was last closed (the open time doubles with each).
        opened_at: When it first opened since it was last closed.
        reason: The error that opened it.
    """

    status: BreakerStatus = BreakerStatus.CLOSED
    failures: int = 0
    last_failure: float = 0.0
    open_until: float = 0.0
    probe_until: float = 0.0
    trips: int = 0
    opened_at: float = 0.0
    reason: str = ""

    def to_json(self) -> str:
        """The state as stored."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> BreakerState:
        """A stored state."""
        data = json.loads(text)
        data["status"] = BreakerStatus(data["status"])
        return cls(**data)


def _open(state: BreakerState, policy: BreakerPolicy, now: float, reason: str) -> None:
    state.trips += 1
    state.status = BreakerStatus.OPEN
    state.open_until = now + min(policy.max_open_s, policy.open_s * 2 ** (state.trips - 1))
    if state.trips == 1:
        state.opened_at = now
    state.reason = reason[:500]


def on_failure(state: BreakerState, policy: BreakerPolicy, now: float, reason: str) -> None:
    """Record a provider failure: count it, or open (again) when it is one too many."""
    if state.status == BreakerStatus.HALF_OPEN:
        _open(state, policy, now, reason)
    elif state.status == BreakerStatus.CLOSED:
        if now - state.last_failure > policy.window_s:
            state.failures = 0
        state.failures += 1
        state.last_failure = now
        if state.failures >= policy.threshold:
            _open(state, policy, now, reason)


def on_success(state: BreakerState) -> bool:
    """Record an answer: the provider is back. Returns whether anything changed."""
    if state.status == BreakerStatus.CLOSED and state.failures == 0:
        return False
    state.status = BreakerStatus.CLOSED
    state.failures = 0
    state.trips = 0
    state.open_until = state.probe_until = 0.0
    return True


def on_admit(state: BreakerState, policy: BreakerPolicy, now: float) -> float | None:
    """Whether a call may go now.

    Returns:
        None when it may (closed, or this call is the half-open probe: the state is updated),
        else the seconds until it should ask again.
    """
    if state.status == BreakerStatus.CLOSED:
        return None
    if state.status == BreakerStatus.OPEN and now < state.open_until:
        return state.open_until - now
    if state.status == BreakerStatus.HALF_OPEN and now < state.probe_until:
        return state.probe_until - now
    state.status = BreakerStatus.HALF_OPEN
    state.probe_until = now + policy.probe_timeout_s
    return None


@runtime_checkable
class BreakerStore(Protocol):
    """Where breaker state lives; :meth:`update` is one atomic read-modify-write."""

    async def open(self) -> None:
        """Create what the store needs (a table)."""
        ...

    async def close(self) -> None:
        """Release what :meth:`open` acquired."""
        ...

    async def update(
        self, name: str, change: Callable[[BreakerState], R]
    ) -> tuple[R, BreakerState]:
        """Apply ``change`` to a breaker's state atomically; return its result and the state."""
        ...

    async def read(self, names: Sequence[str]) -> dict[str, BreakerState]:
        """The stored states of these breakers (missing ones are closed)."""
        ...

    async def all(self) -> dict[str, BreakerState]:
        """Every stored breaker (for status)."""
        ...


class LocalBreakers:
    """Breakers in this process's memory."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}

    async def open(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release."""

    async def update(
        self, name: str, change: Callable[[BreakerState], R]
    ) -> tuple[R, BreakerState]:
        """Apply ``change`` in place."""
        state = self._states.setdefault(name, BreakerState())
        result = change(state)
        return result, BreakerState(**asdict(state))

    async def read(self, names: Sequence[str]) -> dict[str, BreakerState]:
        """Copies of the states."""
        return {n: BreakerState(**asdict(self._states.get(n, BreakerState()))) for n in names}

    async def all(self) -> dict[str, BreakerState]:
        """Every breaker seen."""
        return await self.read(list(self._states))


SQLITE_TABLE = (
    "CREATE TABLE IF NOT EXISTS as_llm_breakers (name TEXT PRIMARY KEY, state TEXT NOT NULL) "
    "WITHOUT ROWID"
)


def sqlite_breakers_table(conn: sqlite3.Connection) -> None:
    """Create the breaker table in a SQLite journal (idempotent)."""
    conn.execute(SQLITE_TABLE)


def _sqlite_get(conn: sqlite3.Connection, name: str) -> BreakerState:
    row = conn.execute("SELECT state FROM as_llm_breakers WHERE name = ?", (name,)).fetchone()
    return BreakerState() if row is None else BreakerState.from_json(row[0])


class SqliteBreakers:
    """Breakers in a table of the SQLite journal, shared by every process using the file.

    Args:
        db: The journal's database.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    async def open(self) -> None:
        """Create the breaker table."""
        await self.db.write(sqlite_breakers_table)

    async def close(self) -> None:
        """Nothing to release: the database belongs to the journal."""

    async def update(
        self, name: str, change: Callable[[BreakerState], R]
    ) -> tuple[R, BreakerState]:
        """Apply ``change`` in one write transaction."""

        def op(conn: sqlite3.Connection) -> tuple[R, BreakerState]:
            state = _sqlite_get(conn, name)
            result = change(state)
            conn.execute(
                "INSERT INTO as_llm_breakers (name, state) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET state = excluded.state",
                (name, state.to_json()),
            )
            return result, state

        return await self.db.write(op)

    async def read(self, names: Sequence[str]) -> dict[str, BreakerState]:
        """The stored states."""

        def op(conn: sqlite3.Connection) -> dict[str, BreakerState]:
            return {n: _sqlite_get(conn, n) for n in names}

        return await self.db.read(op)

    async def all(self) -> dict[str, BreakerState]:
        """Every stored breaker."""

        def op(conn: sqlite3.Connection) -> dict[str, BreakerState]:
            sqlite_breakers_table(conn)
            rows = conn.execute("SELECT name, state FROM as_llm_breakers ORDER BY name")
            return {name: BreakerState.from_json(text) for name, text in rows}

        return await self.db.write(op)


class PostgresBreakers:
    """Breakers in ``<schema>.as_llm_breakers``, with a small connection pool of their own.

    Args:
        conninfo: PostgreSQL connection string (the journal's).
        schema: Schema of the journal.
        timeout_s: Longest wait for a pooled connection.
    """

    def __init__(
        self, conninfo: str, *, schema: str = "agentstream", timeout_s: float = 10.0
    ) -> None:
        import psycopg_pool
        from psycopg import sql

        if not schema.replace("_", "").isalnum():
            raise ConfigurationError(f"invalid schema name {schema!r}")
        self.schema = schema
        self._conninfo = conninfo
        self._timeout_s = timeout_s
        self._sql = sql
        self._table = sql.Identifier(schema, "as_llm_breakers")
        self._pool: Any = psycopg_pool.AsyncConnectionPool(
            conninfo, min_size=1, max_size=2, open=False, name=f"agentstream-breakers-{schema}"
        )

    async def _run(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[R]]) -> R:
        import psycopg
        import psycopg_pool

        try:
            async with (
                self._pool.connection(timeout=self._timeout_s) as conn,
                conn.transaction(),
            ):
                return await fn(conn)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise TransientError(f"breaker state unavailable: {exc}") from exc

    async def open(self) -> None:
        """Open the pool and create the table."""
        await self._pool.open(wait=True, timeout=self._timeout_s)
        sql = self._sql

        home = PostgresHome(self._conninfo, self.schema)

        async def create(conn: psycopg.AsyncConnection[Any]) -> None:
            await home.create_tables(
                conn,
                [
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, state TEXT NOT NULL)"
                    ).format(self._table)
                ],
            )

        await self._run(create)

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def update(
        self, name: str, change: Callable[[BreakerState], R]
    ) -> tuple[R, BreakerState]:
        """Apply ``change`` with the row locked."""
        sql = self._sql

        async def op(conn: psycopg.AsyncConnection[Any]) -> tuple[R, BreakerState]:
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (name, state) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING"
                ).format(self._table),
                (name, BreakerState().to_json()),
            )
            cur = await conn.execute(
                sql.SQL("SELECT state FROM {} WHERE name = %s FOR UPDATE").format(self._table),
                (name,),
            )
            row = await cur.fetchone()
            state = BreakerState.from_json(row[0]) if row else BreakerState()
            result = change(state)
            await conn.execute(
                sql.SQL("UPDATE {} SET state = %s WHERE name = %s").format(self._table),
                (state.to_json(), name),
            )
            return result, state

        return await self._run(op)

    async def read(self, names: Sequence[str]) -> dict[str, BreakerState]:
        """The stored states."""
        sql = self._sql

        async def op(conn: psycopg.AsyncConnection[Any]) -> dict[str, BreakerState]:
            cur = await conn.execute(
                sql.SQL("SELECT name, state FROM {} WHERE name = ANY(%s)").format(self._table),
                (list(names),),
            )
            found = {r[0]: BreakerState.from_json(r[1]) for r in await cur.fetchall()}
            return {n: found.get(n, BreakerState()) for n in names}

        return await self._run(op)

    async def all(self) -> dict[str, BreakerState]:
        """Every stored breaker."""
        sql = self._sql

        async def op(conn: psycopg.AsyncConnection[Any]) -> dict[str, BreakerState]:
            cur = await conn.execute(
                sql.SQL("SELECT name, state FROM {} ORDER BY name").format(self._table)
            )
            return {r[0]: BreakerState.from_json(r[1]) for r in await cur.fetchall()}

        return await self._run(op)
