"""Content-addressed blobs in the PostgreSQL journal (large parts of LLM transcripts).

The SQL behind ``Store.put_blobs`` / ``Store.get_blobs`` and the blob part of ``Store.prune``
for the PostgreSQL journal, as functions of a connection and the journal's schema, and
:class:`PostgresBlobs`, a base class of the store that runs them.
Semantics match :mod:`agentstream.journal.sqlite.blobs`: a known digest keeps its text and is
marked used; prune deletes blobs unused since the horizon that no remaining step references.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

from psycopg import sql

from agentstream.journal.blobs import BLOB_REF, blob_refs
from agentstream.journal.packing import USED_AT_STEP_S, blob_rows, payload_refs, unpacked
from agentstream.journal.postgres.database import Conn, PostgresDatabase
from agentstream.journal.postgres.schema import BLOBS_MIGRATION_SQL
from agentstream.journal.tables import PACKED_BLOB_BODIES, POSTGRES, render

__all__ = [
    "BLOBS_MIGRATION_SQL",
    "BLOBS_SQL",
    "PostgresBlobs",
    "get_blobs",
    "prune_blobs",
    "put_blobs",
]

BLOBS_SQL = BLOBS_MIGRATION_SQL + ";" + render(PACKED_BLOB_BODIES, POSTGRES)
"""The statements that make the blob table as it is now (migration 2, then the blob part of
migration 5); ``{s}`` is the quoted schema name."""


def _table(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


async def put_blobs(conn: Conn, schema: str, blobs: Mapping[str, str], now: float) -> None:
    """Insert blobs; a known digest keeps its text and is marked used.

    Its ``used_at`` becomes ``now`` when older than
    :data:`~agentstream.journal.packing.USED_AT_STEP_S`.
    """
    if not blobs:
        return
    await conn.cursor().executemany(
        sql.SQL(
            "INSERT INTO {} (digest, body, body_z, created_at, used_at) "
            "VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (digest) DO UPDATE SET used_at = EXCLUDED.used_at "
            f"WHERE as_blobs.used_at < EXCLUDED.used_at - {USED_AT_STEP_S}"
        ).format(_table(schema, "as_blobs")),
        blob_rows(blobs, now),
    )


async def get_blobs(conn: Conn, schema: str, digests: Collection[str]) -> dict[str, str]:
    """The stored texts among ``digests``."""
    wanted = list(dict.fromkeys(digests))
    if not wanted:
        return {}
    cur = await conn.execute(
        sql.SQL("SELECT digest, body, body_z FROM {} WHERE digest = ANY(%s)").format(
            _table(schema, "as_blobs")
        ),
        (wanted,),
    )
    return {row[0]: str(unpacked(row[1], row[2])) for row in await cur.fetchall()}


def _json_refs(text: str) -> set[str]:
    return blob_refs(json.loads(text))


async def prune_blobs(conn: Conn, schema: str, before: float) -> int:
    """Delete blobs unused since ``before`` that nothing remaining references.

    References are in LLM step requests, packed message values and dead-letter envelopes.
    """
    blobs = _table(schema, "as_blobs")
    cur = await conn.execute(
        sql.SQL("SELECT 1 FROM {} WHERE used_at < %s LIMIT 1").format(blobs), (before,)
    )
    if await cur.fetchone() is None:
        return 0
    like = (f'%"{BLOB_REF}"%',)
    holders: tuple[tuple[str, str, tuple[str, ...], Callable[[Any], set[str]]], ...] = (
        ("SELECT request::text FROM {} WHERE kind = 'llm' AND request::text LIKE %s",
         "as_steps", like, _json_refs),
        ("SELECT msg_packed FROM {} WHERE msg_packed IS NOT NULL", "as_events", (), payload_refs),
        ("SELECT envelope FROM {} WHERE envelope LIKE %s", "as_dead_letters", like, _json_refs),
    )  # fmt: skip
    referenced: set[str] = set()
    for query, table, args, refs in holders:
        cur = await conn.execute(sql.SQL(query).format(_table(schema, table)), args)
        for (value,) in await cur.fetchall():
            referenced |= refs(value)
    cur = await conn.execute(
        sql.SQL("DELETE FROM {} WHERE used_at < %s AND NOT (digest = ANY(%s))").format(blobs),
        (before, sorted(referenced)),
    )
    return int(cur.rowcount)


class PostgresBlobs(PostgresDatabase):
    """``put_blobs`` / ``get_blobs`` of the PostgreSQL journal (a mixin of its store)."""

    async def put_blobs(self, blobs: Mapping[str, str]) -> None:
        """Store content-addressed texts; a known digest keeps its text and is marked used."""
        if not blobs:
            return
        now = self._clock()

        async def op(conn: Conn) -> None:
            async with conn.transaction():
                await put_blobs(conn, self.schema, blobs, now)

        await self.run(op)

    async def get_blobs(self, digests: Collection[str]) -> dict[str, str]:
        """The stored texts among ``digests``."""

        async def op(conn: Conn) -> dict[str, str]:
            return await get_blobs(conn, self.schema, digests)

        return await self.run(op)
