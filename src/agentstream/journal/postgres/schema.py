"""The PostgreSQL journal's schema: versioned migrations applied under an advisory lock.

Every table lives in the store's schema (default ``agentstream``), next to ``as_migrations``,
which lists the migrations applied. :func:`migrate` runs in one transaction holding a
transaction-scoped advisory lock derived from the schema name, so N workers opening the same
journal at once apply each pending migration exactly once and all see the finished schema.

The tables are :mod:`agentstream.journal.tables` in PostgreSQL's dialect: times are
wall-clock seconds as ``DOUBLE PRECISION`` (they come from the store's clock, never from
``now()``), JSON values are stored as their exact text, message keys and values as ``BYTEA``.
Migrations are append-only: change the schema by adding one, never by editing one that was
released (a change to a shared template must leave the released migrations' text as it was).
"""

from __future__ import annotations

from typing import Any

import psycopg

from agentstream.journal.tables import (
    BLOBS,
    CORE,
    EVENTS_AUTOVACUUM,
    NULLABLE_VALUES,
    OUTBOX_LANES,
    PACKED,
    POSTGRES,
    STATUS,
    WAITS,
    render,
)

__all__ = ["MIGRATIONS", "create_schema_locked", "migrate"]

Conn = psycopg.AsyncConnection[tuple[Any, ...]]


BLOBS_MIGRATION_SQL = render(BLOBS, POSTGRES)
"""The migration creating the blob table; ``{s}`` is the quoted schema name."""

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "core tables", render(CORE, POSTGRES)),
    (2, "content-addressed blobs", BLOBS_MIGRATION_SQL),
    (
        3,
        "outbox lanes: records of one topic and key in order",
        render(OUTBOX_LANES, POSTGRES),
    ),
    (4, "waiting events and signals", render(WAITS, POSTGRES)),
    (
        5,
        "packed values: payload segments, compressed step results and blob bodies",
        render(PACKED, POSTGRES),
    ),
    (
        6,
        "status without scans: unpriced model calls, waiting events, events autovacuum",
        render(STATUS + ";" + EVENTS_AUTOVACUUM, POSTGRES),
    ),
    (
        7,
        "tombstones: outbox and parked values may be null",
        ";".join(
            f"ALTER TABLE {{s}}.{table} ALTER COLUMN {column} DROP NOT NULL"
            for table, columns in NULLABLE_VALUES.items()
            for column in columns
        ),
    ),
)
"""``(version, name, statements)``; ``{s}`` in the statements is the quoted schema name."""


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


async def create_schema_locked(conn: Conn, schema: str) -> None:
    """In the caller's transaction: take the migration lock, then create the schema if missing.

    Every schema object, the journal's and those of the features that share its database
    (:mod:`agentstream.journal.shared`), is created after this call in the same transaction.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"agentstream.migrate:{schema}",)
    )
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")


async def migrate(conn: Conn, schema: str, now: float) -> list[int]:
    """Create the schema or bring it up to date; return the versions applied now.

    Runs in the caller's connection (autocommit) as one transaction: a crash halfway leaves
    the schema as it was, and a concurrent opener waits on the advisory lock, then finds
    nothing left to do.
    """
    s = quote_ident(schema)
    applied_now: list[int] = []
    async with conn.transaction():
        await create_schema_locked(conn, schema)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.as_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        cur = await conn.execute(f"SELECT version FROM {s}.as_migrations")
        done = {int(row[0]) for row in await cur.fetchall()}
        for version, name, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements.replace("{s}", s).split(";"):
                if statement.strip():
                    await conn.execute(statement)
            await conn.execute(
                f"INSERT INTO {s}.as_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (version, name, now),
            )
            applied_now.append(version)
    return applied_now
