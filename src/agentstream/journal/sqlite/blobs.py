"""Content-addressed blobs in the SQLite journal (large parts of LLM transcripts).

A mixin of :class:`~agentstream.journal.sqlite.SqliteStore`; see
:class:`~agentstream.journal.store.Store` for the contract and
:mod:`agentstream.journal.blobs` for what is stored. Each blob remembers when a step last
referenced it (``used_at``), so retention deletes the blobs that nothing remaining references
(a step's request, an event's packed message value, a dead letter's envelope).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Mapping

from agentstream.journal.blobs import blob_refs
from agentstream.journal.packing import USED_AT_STEP_S, blob_rows, payload_refs, unpacked
from agentstream.sqlite_db import SqliteDatabase

INSERT_BLOBS = (
    "INSERT INTO as_blobs (digest, body, body_z, created_at, used_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (digest) DO UPDATE SET used_at = excluded.used_at "
    f"WHERE as_blobs.used_at < excluded.used_at - {USED_AT_STEP_S}"
)
"""Store blobs (rows of :func:`~agentstream.journal.packing.blob_rows`); a known digest keeps
its body and is marked used (:data:`~agentstream.journal.packing.USED_AT_STEP_S`)."""


def put_blobs(conn: sqlite3.Connection, blobs: Mapping[str, str], now: float) -> None:
    """Store content-addressed texts in the caller's transaction."""
    if blobs:
        conn.executemany(INSERT_BLOBS, blob_rows(blobs, now))


def prune_blobs(conn: sqlite3.Connection, before: float) -> int:
    """Delete blobs unused since ``before`` that no remaining step request references.

    Runs inside the prune transaction, after old steps were deleted. Only when some blob is old
    enough are the remaining LLM step requests scanned for references.
    """
    if (
        conn.execute("SELECT 1 FROM as_blobs WHERE used_at < ? LIMIT 1", (before,)).fetchone()
        is None
    ):
        return 0
    referenced: set[str] = set()
    for (request,) in conn.execute(
        "SELECT request FROM as_steps WHERE kind = 'llm' AND request LIKE '%\"$blob\"%'"
    ):
        blob_refs(json.loads(request), referenced)
    for (packed,) in conn.execute("SELECT msg_packed FROM as_events WHERE msg_packed IS NOT NULL"):
        referenced |= payload_refs(packed)
    for (envelope,) in conn.execute(
        "SELECT envelope FROM as_dead_letters WHERE envelope LIKE '%\"$blob\"%'"
    ):
        blob_refs(json.loads(envelope), referenced)
    conn.execute("DROP TABLE IF EXISTS temp.as_keep_blobs")
    conn.execute("CREATE TEMP TABLE as_keep_blobs (digest TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO temp.as_keep_blobs VALUES (?)", [(d,) for d in referenced])
    deleted = conn.execute(
        "DELETE FROM as_blobs WHERE used_at < ? AND digest NOT IN "
        "(SELECT digest FROM temp.as_keep_blobs)",
        (before,),
    ).rowcount
    conn.execute("DROP TABLE temp.as_keep_blobs")
    return int(deleted)


class SqliteBlobs:
    """``put_blobs`` / ``get_blobs`` of the SQLite journal."""

    db: SqliteDatabase
    _clock: Callable[[], float]

    async def put_blobs(self, blobs: Mapping[str, str]) -> None:
        """Store content-addressed texts; a known digest keeps its text and is marked used."""
        if not blobs:
            return
        now = self._clock()

        def op(conn: sqlite3.Connection) -> None:
            put_blobs(conn, blobs, now)

        await self.db.write(op)

    async def get_blobs(self, digests: Collection[str]) -> dict[str, str]:
        """The stored texts among ``digests``."""
        wanted = list(dict.fromkeys(digests))
        if not wanted:
            return {}

        def op(conn: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for digest, body, body_z in conn.execute(
                    f"SELECT digest, body, body_z FROM as_blobs WHERE digest IN ({marks})", chunk
                ):
                    found[digest] = str(unpacked(body, body_z))
            return found

        return await self.db.read(op)
