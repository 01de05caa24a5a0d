"""Schema migrations: versioned, applied once, safe when many workers open at once."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg import sql

from agentstream.backends import Backends
from agentstream.event import Message
from agentstream.failures import ConfigurationError
from agentstream.journal import ShadowRun
from agentstream.journal.postgres import PostgresStore, from_url
from agentstream.journal.postgres.schema import MIGRATIONS
from tests.services import postgres_dsn


async def migrations(schema: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(postgres_dsn()) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT version FROM {} ORDER BY version").format(
                sql.Identifier(schema, "as_migrations")
            )
        )
        return [row[0] for row in await cur.fetchall()]


async def test_eight_workers_opening_a_new_journal_at_once_migrate_it_exactly_once(pg_schema):
    # Given eight stores (eight pools) on a schema that does not exist yet
    stores = [PostgresStore(postgres_dsn(), schema=pg_schema) for _ in range(8)]
    # When they all open at the same moment
    await asyncio.gather(*(s.open() for s in stores))
    try:
        # Then none failed, each migration is recorded once, and every store works
        assert await migrations(pg_schema) == [v for v, _, _ in MIGRATIONS]
        await stores[0].put_blobs({"sha256:x": "x"})
        assert await stores[7].get_blobs(["sha256:x"]) == {"sha256:x": "x"}
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_reopening_applies_only_the_pending_migrations_and_keeps_the_rows(pg_schema):
    store = PostgresStore(postgres_dsn(), schema=pg_schema)
    await store.open()
    await store.save_shadow_run(ShadowRun("r", "a", "c", 1.0))
    await store.close()
    # Given a journal from before the blobs migration (version 2 rolled back by hand, and
    # version 5, which changes the blob table)
    async with await psycopg.AsyncConnection.connect(postgres_dsn(), autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(pg_schema, "as_blobs")))
        await conn.execute(
            sql.SQL("DELETE FROM {} WHERE version IN (2, 5)").format(
                sql.Identifier(pg_schema, "as_migrations")
            )
        )
    # When a worker opens it again (twice)
    for _ in range(2):
        store = PostgresStore(postgres_dsn(), schema=pg_schema)
        await store.open()
        await store.close()
    # Then the missing migration was applied once and earlier rows are still there
    assert await migrations(pg_schema) == [v for v, _, _ in MIGRATIONS]
    store = PostgresStore(postgres_dsn(), schema=pg_schema)
    await store.open()
    try:
        await store.put_blobs({"sha256:y": "y"})
        assert [r.run_id for r in await store.shadow_runs()] == ["r"]
    finally:
        await store.close()


def test_journal_urls_pick_the_schema_and_pool_size_and_keep_libpq_options():
    store = from_url(
        "postgres://u@db:5432/app?schema=tenant_7&pool_size=3&sslmode=disable",
        Backends("sqlite:///x.db", "postgres://u@db:5432/app"),
    )
    assert (store.schema, store.pool_size) == ("tenant_7", 3)
    assert store.conninfo == "postgresql://u@db:5432/app?sslmode=disable"
    default = from_url("postgresql://u@db/app", Backends("sqlite:///x.db", "postgresql://u@db/app"))
    assert (default.schema, default.conninfo) == ("agentstream", "postgresql://u@db/app")
    with pytest.raises(ConfigurationError):
        from_url("postgresql://u@db/app?schema=bad;drop", Backends("x.db", "x.db"))


async def test_a_journal_from_before_tombstones_takes_null_values_and_keeps_its_rows(pg_schema):
    store = PostgresStore(postgres_dsn(), schema=pg_schema)
    await store.open()
    assert await store.park("a", "p0", "k", Message("t", 0, 0, b"k", b"old")) is False
    await store.close()
    # Given a journal from before migration 7: outbox and parked values NOT NULL, with a row
    async with await psycopg.AsyncConnection.connect(postgres_dsn(), autocommit=True) as conn:
        for table in ("as_outbox", "as_parked"):
            await conn.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN value SET NOT NULL").format(
                    sql.Identifier(pg_schema, table)
                )
            )
        await conn.execute(
            sql.SQL(
                'INSERT INTO {} (agent, event_id, event_key, topic, partition, "offset", '
                "timestamp_ms, key, value, headers, created_at) "
                "VALUES ('a', 'p-old', 'k', 't', 0, 1, 5, 'k', 'old', '[]', 1.0)"
            ).format(sql.Identifier(pg_schema, "as_parked"))
        )
        await conn.execute(
            sql.SQL("DELETE FROM {} WHERE version = 7").format(
                sql.Identifier(pg_schema, "as_migrations")
            )
        )
    # When a worker opens it again and parks a tombstone behind the old row
    store = PostgresStore(postgres_dsn(), schema=pg_schema)
    await store.open()
    try:
        assert await store.park("a", "p-new", "k", Message("t", 0, 2, b"k", None, timestamp_ms=5))
        # Then the migration ran and both rows are there, the null one as None
        assert [p.message.value for p in await store.parked("a", key="k")] == [b"old", None]
    finally:
        await store.close()
    assert await migrations(pg_schema) == [v for v, _, _ in MIGRATIONS]
