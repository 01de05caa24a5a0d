"""Content-addressed blobs in the PostgreSQL journal (large parts of LLM transcripts).

The SQL behind ``Store.put_blobs`` / ``Store.get_blobs`` and the blob part of ``Store.prune``
for the PostgreSQL journal, as functions of a connection and the journal's schema, and
:class:`PostgresBlobs`, a base class of the store that runs them.
Semantics match :mod:`agentstream.journal.sqlite.blobs`: a known digest keeps its text and is
marked used; prune deletes blobs unused since the horizon that no remaining step references.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

from psycopg import sql

from agentstream.journal.blobs import BLOB_REF, blob_refs
from agentstream.journal.postgres.database import Conn, PostgresDatabase
from agentstream.journal.postgres.schema import BLOBS_MIGRATION_SQL

__all__ = ["BLOBS_MIGRATION_SQL", "PostgresBlobs", "get_blobs", "prune_blobs", "put_blobs"]


def _table(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


async def put_blobs(conn: Conn, schema: str, blobs: Mapping[str, str], now: float) -> None:
    """Insert blobs; a known digest keeps its text and gets ``used_at = now``."""
    if not blobs:
        return
    await conn.cursor().executemany(
        sql.SQL(
            "INSERT INTO {} (digest, body, created_at, used_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (digest) DO UPDATE SET used_at = EXCLUDED.used_at"
        ).format(_table(schema, "as_blobs")),
        [(digest, body, now, now) for digest, body in sorted(blobs.items())],
    )


async def get_blobs(conn: Conn, schema: str, digests: Collection[str]) -> dict[str, str]:
    """The stored texts among ``digests``."""
    wanted = list(dict.fromkeys(digests))
    if not wanted:
        return {}
    cur = await conn.execute(
        sql.SQL("SELECT digest, body FROM {} WHERE digest = ANY(%s)").format(
            _table(schema, "as_blobs")
        ),
        (wanted,),
    )
    return {row[0]: row[1] for row in await cur.fetchall()}


async def prune_blobs(conn: Conn, schema: str, before: float) -> int:
    """Delete blobs unused since ``before`` that no remaining LLM step request references."""
    blobs = _table(schema, "as_blobs")
    cur = await conn.execute(
        sql.SQL("SELECT 1 FROM {} WHERE used_at < %s LIMIT 1").format(blobs), (before,)
    )
    if await cur.fetchone() is None:
        return 0
    referenced: set[str] = set()
    cur = await conn.execute(
        sql.SQL("SELECT request::text FROM {} WHERE kind = 'llm' AND request::text LIKE %s").format(
            _table(schema, "as_steps")
        ),
        (f'%"{BLOB_REF}"%',),
    )
    for (request,) in await cur.fetchall():
        blob_refs(json.loads(request), referenced)
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
