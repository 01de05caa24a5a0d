"""Shared limit buckets and transcript blobs on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import sql

from agentstream.journal.postgres import blobs as postgres_blobs
from agentstream.llm.buckets import BucketSpec, Take
from agentstream.llm.buckets_postgres import PostgresBuckets
from tests.services import postgres_dsn, unavailable


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A fresh schema on the test server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        conn = await psycopg.AsyncConnection.connect(postgres_dsn(), autocommit=True)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {postgres_dsn()}: {exc}")
    await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    await conn.close()


async def test_postgres_buckets_are_one_quota_for_every_process(schema):
    stores = [PostgresBuckets(postgres_dsn(), schema=schema) for _ in range(3)]
    for store in stores:
        await store.open()
    spec = BucketSpec("llm:m:requests", capacity=40, rate=0.0001)

    async def greedy(store: PostgresBuckets) -> int:
        return sum([await store.take([Take(spec, 1)], 1000.0) == 0.0 for _ in range(30)])

    try:
        counts = await asyncio.gather(*(greedy(s) for s in stores))
        assert sum(counts) == 40, counts  # separate quotas would have granted 3 x 30
        other = BucketSpec("llm:m:tokens", capacity=100, rate=10)
        assert await stores[0].take([Take(other, 100), Take(spec, 1)], 1000.0) > 0
        assert await stores[1].take([Take(other, 60)], 1000.0) == 0.0  # nothing was debited
        await stores[2].block(other, until=1030.0, now=1000.0)
        assert await stores[0].take([Take(other, 1)], 1020.0) == pytest.approx(10.0)
        await stores[1].give([Take(other, 1000)], 1031.0)
        await stores[2].cap(other, 5, 1031.0)
        assert await stores[0].take([Take(other, 10)], 1031.0) == pytest.approx(0.5)
    finally:
        for store in stores:
            await store.close()


async def test_postgres_blobs_are_stored_once_and_pruned_when_unreferenced(schema):
    conn = await psycopg.AsyncConnection.connect(postgres_dsn(), autocommit=True)
    s = sql.Identifier(schema).as_string(conn)
    for statement in postgres_blobs.BLOBS_SQL.format(s=s).split(";"):
        await conn.execute(statement)
    await conn.execute(f"CREATE TABLE {s}.as_steps (kind TEXT, request JSON)")
    # the other tables whose rows reference blobs (packed message values, dead letters)
    await conn.execute(f"CREATE TABLE {s}.as_events (msg_packed BYTEA)")
    await conn.execute(f"CREATE TABLE {s}.as_dead_letters (envelope TEXT)")
    try:
        await postgres_blobs.put_blobs(conn, schema, {"sha256:a": "A", "sha256:b": "B"}, 1.0)
        await postgres_blobs.put_blobs(conn, schema, {"sha256:a": "changed?"}, 2000.0)
        assert await postgres_blobs.get_blobs(conn, schema, ["sha256:a", "sha256:x"]) == {
            "sha256:a": "A"
        }
        await postgres_blobs.put_blobs(conn, schema, {"sha256:c": "C"}, 1.0)
        await conn.execute(
            f"INSERT INTO {s}.as_steps VALUES ('llm', %s)",
            ('{"messages": [{"$blob": "sha256:c"}]}',),
        )
        assert await postgres_blobs.prune_blobs(conn, schema, before=1000.0) == 1
        assert await postgres_blobs.get_blobs(
            conn, schema, ["sha256:a", "sha256:b", "sha256:c"]
        ) == {
            "sha256:a": "A",
            "sha256:c": "C",
        }
    finally:
        await conn.close()
