"""Where state that a journal's workers share lives: next to the journal, in its database.

Features above the journal (rate-limit buckets, circuit breakers) keep small tables of their own
where every worker that shares the journal sees them. A store that can host them says where with
``shared_home()`` (:class:`SharedStateHost`): a :class:`SqliteHome` (the journal's file, through
its database thread) or a :class:`PostgresHome` (the journal's database and schema). Those
features choose their own store from the home, never from the journal's classes.

On PostgreSQL, every schema object must be created under the journal's migration lock
(:meth:`PostgresHome.create_tables`): ``CREATE TABLE IF NOT EXISTS`` run by two processes at once
can fail with a unique violation on ``pg_type`` when many workers start on a fresh schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import psycopg

    from agentstream.sqlite_db import SqliteDatabase

__all__ = ["PostgresHome", "SharedHome", "SharedStateHost", "SqliteHome", "shared_home"]


@dataclass(frozen=True, slots=True)
class SqliteHome:
    """Shared state in the SQLite journal's file (one write transaction per change)."""

    db: SqliteDatabase


@dataclass(frozen=True, slots=True)
class PostgresHome:
    """Shared state in the PostgreSQL journal's database, in its schema."""

    conninfo: str
    schema: str

    async def create_tables(
        self, conn: psycopg.AsyncConnection[Any], statements: Sequence[Any]
    ) -> None:
        """Create the schema and run ``statements`` in one transaction, under the migration lock.

        ``statements`` are ``CREATE ... IF NOT EXISTS`` (text or composed SQL), so a worker
        that finds them done changes nothing.
        """
        from agentstream.journal.postgres.schema import create_schema_locked

        async with conn.transaction():
            await create_schema_locked(conn, self.schema)
            for statement in statements:
                await conn.execute(statement)


SharedHome = SqliteHome | PostgresHome


@runtime_checkable
class SharedStateHost(Protocol):
    """A journal that hosts the state its workers share."""

    def shared_home(self) -> SharedHome:
        """Where that state lives."""
        ...


def shared_home(store: object) -> SharedHome | None:
    """Where ``store`` keeps shared state, or None (another journal, or none: keep it local)."""
    return store.shared_home() if isinstance(store, SharedStateHost) else None
