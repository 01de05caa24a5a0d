"""The embedded transport: a partitioned log with consumer groups, in a SQLite file.

It is a real transport, not a mock: records are durable, partitioned by key hash, read by
offset; consumer groups keep committed offsets; several processes sharing the file form one
group with partitions spread over the live members. Group membership is heartbeat-based: a
member that stops heartbeating for ``session_timeout_s`` loses its partitions to the others.
During a rebalance two members may briefly read the same partition; the journal's atomic claim
makes that harmless, and committed offsets only ever move forward.

Outgoing records with a ``dedupe_id`` are written at most once per topic, so re-emitting an
output after a crash never duplicates it here. A record's value may be null (a tombstone, as on
Kafka), which is read back as None, not as empty bytes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import time
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agentstream.event import (
    Message,
    OutgoingRecord,
    TopicPartition,
    decode_headers,
    encode_headers,
)
from agentstream.sqlite_db import SqliteDatabase, apply_schema, sqlite_path
from agentstream.transports.base import RebalanceListener
from agentstream.transports.offsets import OffsetTracker

if TYPE_CHECKING:
    from agentstream.config import RuntimeConfig
    from agentstream.sqlite_db import SqliteFiles

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_topics (topic TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log_partitions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_records (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    key BLOB, value BLOB, headers TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,
    dedupe_id TEXT,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE UNIQUE INDEX IF NOT EXISTS log_records_dedupe ON log_records (topic, dedupe_id)
    WHERE dedupe_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS log_group_offsets (
    group_id TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_group_members (
    group_id TEXT NOT NULL, member_id TEXT NOT NULL, topics TEXT NOT NULL,
    heartbeat REAL NOT NULL,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
"""


def partition_for(key: bytes | None, partitions: int, fallback: int) -> int:
    """Partition of a key: CRC-32 of the key bytes modulo the partition count."""
    if key is None:
        return fallback % partitions
    return zlib.crc32(key) % partitions


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the log's tables (inside the caller's transaction).

    A log written before null values were accepted gets its records table rebuilt, rows kept.
    """
    apply_schema(conn, _SCHEMA, {"log_records": ("value",)})


def _ensure_topic(conn: sqlite3.Connection, topic: str, partitions: int) -> int:
    row = conn.execute("SELECT partitions FROM log_topics WHERE topic = ?", (topic,)).fetchone()
    if row is not None:
        return int(row[0])
    conn.execute("INSERT INTO log_topics (topic, partitions) VALUES (?, ?)", (topic, partitions))
    conn.executemany(
        "INSERT INTO log_partitions (topic, partition, next_offset) VALUES (?, ?, 0)",
        [(topic, p) for p in range(partitions)],
    )
    return partitions


class EmbeddedTransport:
    """A durable partitioned log in SQLite behind the Transport protocol.

    Args:
        db: A file path or a :class:`SqliteDatabase` (shared with the journal by default).
        partitions: Partitions of topics this transport creates.
        session_timeout_s: A member silent this long is dropped from its group.
        heartbeat_s: How often membership is refreshed while polling.
        idle_poll_s: Sleep between reads when there is nothing new.
        member_id: This consumer's id in its group (default: host, pid and a random suffix).
    """

    messaging_system = "agentstream_embedded"
    """``messaging.system`` of this transport's spans (OpenTelemetry messaging conventions)."""

    def __init__(
        self,
        db: str | Path | SqliteDatabase,
        *,
        partitions: int = 8,
        session_timeout_s: float = 10.0,
        heartbeat_s: float = 1.0,
        idle_poll_s: float = 0.02,
        member_id: str | None = None,
    ) -> None:
        self.db = db if isinstance(db, SqliteDatabase) else SqliteDatabase(db)
        self.default_partitions = partitions
        self.session_timeout_s = session_timeout_s
        self.heartbeat_s = heartbeat_s
        self.idle_poll_s = idle_poll_s
        self.member_id = member_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._started = False
        self._group: str | None = None
        self._topics: list[str] = []
        self._listener: RebalanceListener | None = None
        self._assigned: list[TopicPartition] = []
        self._paused = False
        self._tracker = OffsetTracker()
        self._next_heartbeat = 0.0
        self._last_heartbeat = 0.0  # wall clock of the last heartbeat written
        self._rotate = 0
        self._round_robin = 0

    def __repr__(self) -> str:
        return f"EmbeddedTransport({self.db.path!r})"

    async def start(self) -> None:
        """Open the file and create the log's tables."""
        if self._started:
            return
        await self.db.start()
        self._started = True
        await self.db.write(create_schema)

    async def create_topic(self, topic: str, partitions: int | None = None) -> int:
        """Create a topic if missing; return its partition count."""
        n = partitions or self.default_partitions
        return await self.db.write(lambda conn: _ensure_topic(conn, topic, n))

    async def subscribe(
        self, topics: Sequence[str], group: str, listener: RebalanceListener
    ) -> None:
        """Join ``group`` on ``topics`` and take this member's share of partitions."""
        self._group, self._topics, self._listener = group, list(topics), listener
        for topic in topics:
            await self.create_topic(topic)
        await self._heartbeat()

    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        """Read up to ``max_records`` new records from owned, unpaused partitions."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self._group is not None and time.monotonic() >= self._next_heartbeat:
                await self._heartbeat()
            messages = [] if self._paused else await self._fetch(max_records)
            if messages or time.monotonic() >= deadline:
                return messages
            await asyncio.sleep(min(self.idle_poll_s, max(0.0, deadline - time.monotonic())))

    async def _fetch(self, max_records: int) -> list[Message]:
        parts = list(self._assigned)
        if not parts:
            return []
        start = self._rotate % len(parts)
        self._rotate += 1
        order = parts[start:] + parts[:start]
        positions = [(tp, self._tracker.position(tp)) for tp in order]

        def op(conn: sqlite3.Connection) -> list[Message]:
            out: list[Message] = []
            for tp, position in positions:
                budget = max_records - len(out)
                if budget <= 0:
                    break
                rows = conn.execute(
                    'SELECT "offset", key, value, headers, timestamp_ms FROM log_records '
                    'WHERE topic = ? AND partition = ? AND "offset" >= ? ORDER BY "offset" '
                    "LIMIT ?",
                    (tp.topic, tp.partition, position, budget),
                ).fetchall()
                out.extend(
                    Message(
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=r[0],
                        key=r[1],
                        value=r[2],
                        headers=decode_headers(r[3]),
                        timestamp_ms=r[4],
                    )
                    for r in rows
                )
            return out

        messages = await self.db.read(op)
        owned = set(self._assigned)
        kept = [m for m in messages if m.tp in owned]  # a rebalance may have run meanwhile
        for m in kept:
            self._tracker.delivered(m.tp, m.offset)
        return kept

    async def _heartbeat(self) -> None:
        group, topics, me = self._group, self._topics, self.member_id
        assert group is not None
        timeout, last_ok = self.session_timeout_s, self._last_heartbeat
        beat = time.time()

        def op(conn: sqlite3.Connection) -> tuple[list[str], list[TopicPartition]]:
            now = time.time()
            # A member drops its peers only for a silence longer than its own: when the file
            # could not be written (a full disk, a stall) every member's heartbeat failed
            # alike, and the first one back must not evict the others for it.
            own_silence = max(0.0, now - last_ok - self.heartbeat_s) if last_ok else 0.0
            conn.execute(
                "INSERT INTO log_group_members (group_id, member_id, topics, heartbeat) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (group_id, member_id) DO UPDATE SET "
                "heartbeat = excluded.heartbeat, topics = excluded.topics",
                (group, me, json.dumps(sorted(topics)), now),
            )
            conn.execute(
                "DELETE FROM log_group_members WHERE group_id = ? AND heartbeat < ?",
                (group, now - timeout - own_silence),
            )
            members = [
                r[0]
                for r in conn.execute(
                    "SELECT member_id FROM log_group_members WHERE group_id = ? ORDER BY member_id",
                    (group,),
                )
            ]
            parts = [
                TopicPartition(t, p)
                for t in sorted(topics)
                for (p,) in conn.execute(
                    "SELECT partition FROM log_partitions WHERE topic = ? ORDER BY partition",
                    (t,),
                )
            ]
            return members, parts

        members, parts = await self.db.write(op)
        self._last_heartbeat = beat
        self._next_heartbeat = time.monotonic() + self.heartbeat_s
        rank = members.index(me) if me in members else 0
        mine = [tp for i, tp in enumerate(parts) if i % max(1, len(members)) == rank]
        await self._apply_assignment(mine)

    async def _apply_assignment(self, new: list[TopicPartition]) -> None:
        current = set(self._assigned)
        revoked = [tp for tp in self._assigned if tp not in set(new)]
        added = [tp for tp in new if tp not in current]
        if revoked:
            if self._listener is not None:
                await self._listener.on_revoked(revoked)
            await self._commit(revoked)
            for tp in revoked:
                self._tracker.forget(tp)
            self._assigned = [tp for tp in self._assigned if tp not in set(revoked)]
        if added:
            committed = await self._committed_offsets(added)
            for tp in added:
                self._tracker.assign(tp, committed.get(tp, 0))
            self._assigned.extend(added)
            if self._listener is not None:
                await self._listener.on_assigned(added)

    async def _committed_offsets(self, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        group = self._group

        def op(conn: sqlite3.Connection) -> dict[TopicPartition, int]:
            out: dict[TopicPartition, int] = {}
            for tp in parts:
                row = conn.execute(
                    'SELECT "offset" FROM log_group_offsets WHERE group_id = ? AND topic = ? '
                    "AND partition = ?",
                    (group, tp.topic, tp.partition),
                ).fetchone()
                if row is not None:
                    out[tp] = int(row[0])
            return out

        return await self.db.read(op)

    def pause(self) -> None:
        """Stop fetching; heartbeats continue."""
        self._paused = True

    def resume(self) -> None:
        """Fetch again."""
        self._paused = False

    @property
    def paused(self) -> bool:
        """Whether fetching is paused."""
        return self._paused

    def ack(self, message: Message) -> None:
        """Mark a message durably done."""
        self._tracker.acked(message.tp, message.offset)

    async def commit(self) -> None:
        """Commit every owned partition's watermark that moved."""
        await self._commit(None)

    async def _commit(self, parts: list[TopicPartition] | None) -> None:
        offsets = self._tracker.to_commit(parts)
        if not offsets or self._group is None:
            return
        group = self._group

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                'INSERT INTO log_group_offsets (group_id, topic, partition, "offset") '
                "VALUES (?, ?, ?, ?) ON CONFLICT (group_id, topic, partition) DO UPDATE SET "
                '"offset" = MAX("offset", excluded."offset")',
                [(group, tp.topic, tp.partition, off) for tp, off in offsets.items()],
            )

        await self.db.write(op)
        self._tracker.committed(offsets)

    async def produce(self, records: Sequence[OutgoingRecord]) -> None:
        """Append records durably (records whose dedupe_id the topic has seen are skipped)."""
        if not records:
            return
        now_ms = int(time.time() * 1000)
        default_partitions = self.default_partitions
        rr = self._round_robin
        self._round_robin += len(records)

        def op(conn: sqlite3.Connection) -> None:
            for i, rec in enumerate(records):
                if (
                    rec.dedupe_id is not None
                    and conn.execute(
                        "SELECT 1 FROM log_records WHERE topic = ? AND dedupe_id = ?",
                        (rec.topic, rec.dedupe_id),
                    ).fetchone()
                ):
                    continue
                n = _ensure_topic(conn, rec.topic, default_partitions)
                partition = partition_for(rec.key, n, rr + i)
                (offset,) = conn.execute(
                    "UPDATE log_partitions SET next_offset = next_offset + 1 "
                    "WHERE topic = ? AND partition = ? RETURNING next_offset - 1",
                    (rec.topic, partition),
                ).fetchone()
                conn.execute(
                    'INSERT INTO log_records (topic, partition, "offset", key, value, headers, '
                    "timestamp_ms, dedupe_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rec.topic,
                        partition,
                        offset,
                        rec.key,
                        rec.value,
                        encode_headers(rec.headers),
                        now_ms,
                        rec.dedupe_id,
                    ),
                )

        await self.db.write(op)

    def assignment(self) -> list[TopicPartition]:
        """Partitions this member owns."""
        return list(self._assigned)

    async def lag(self) -> dict[TopicPartition, int | None]:
        """Records past the committed offset, per owned partition."""
        ends = await self.end_offsets(self._assigned)
        return {
            tp: max(0, ends.get(tp, 0) - (self._tracker.committed_offset(tp) or 0))
            for tp in self._assigned
        }

    async def end_offsets(self, parts: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """One past the last offset of each partition."""
        wanted = list(parts)

        def op(conn: sqlite3.Connection) -> dict[TopicPartition, int]:
            out = {}
            for tp in wanted:
                row = conn.execute(
                    "SELECT next_offset FROM log_partitions WHERE topic = ? AND partition = ?",
                    (tp.topic, tp.partition),
                ).fetchone()
                out[tp] = int(row[0]) if row else 0
            return out

        return await self.db.read(op)

    async def group_offsets(
        self, group: str, topics: Sequence[str]
    ) -> dict[TopicPartition, tuple[int | None, int | None]]:
        """Committed offset and log end of each partition of ``topics`` for ``group``."""
        wanted = list(topics)

        def op(conn: sqlite3.Connection) -> dict[TopicPartition, tuple[int | None, int | None]]:
            out: dict[TopicPartition, tuple[int | None, int | None]] = {}
            for topic in wanted:
                for p, end in conn.execute(
                    "SELECT partition, next_offset FROM log_partitions WHERE topic = ?", (topic,)
                ):
                    row = conn.execute(
                        'SELECT "offset" FROM log_group_offsets WHERE group_id = ? AND topic = ? '
                        "AND partition = ?",
                        (group, topic, p),
                    ).fetchone()
                    out[TopicPartition(topic, p)] = (None if row is None else int(row[0]), end)
            return out

        return await self.db.read(op)

    async def close(self) -> None:
        """Commit, leave the group and stop the database thread."""
        if not self._started:
            return
        try:
            if self._group is not None:
                await self.commit()
                group, me = self._group, self.member_id
                await self.db.write(
                    lambda conn: conn.execute(
                        "DELETE FROM log_group_members WHERE group_id = ? AND member_id = ?",
                        (group, me),
                    )
                )
        finally:
            self._started = False
            await self.db.close()


def read_topic(db_path: str | Path, topic: str) -> list[Message]:
    """Read a whole topic synchronously, in partition then offset order (tests and tools)."""
    conn = SqliteDatabase(db_path).connect()
    try:
        rows = conn.execute(
            'SELECT partition, "offset", key, value, headers, timestamp_ms FROM log_records '
            'WHERE topic = ? ORDER BY partition, "offset"',
            (topic,),
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    return [Message(topic, r[0], r[1], r[2], r[3], decode_headers(r[4]), r[5]) for r in rows]


def from_url(url: str, config: RuntimeConfig, backends: SqliteFiles) -> EmbeddedTransport:
    """An embedded log transport for a ``sqlite://`` URL."""
    return EmbeddedTransport(
        backends.sqlite(sqlite_path(url)),
        partitions=config.partitions,
        session_timeout_s=config.session_timeout_s,
        heartbeat_s=config.heartbeat_s,
    )
