"""A journal file written before messages were journaled opens, keeps its rows, and gains the
new columns and tables; journals and logs written before tombstones accept null values."""

from __future__ import annotations

import sqlite3

from agentstream.event import Message, OutgoingRecord
from agentstream.journal import EventState
from agentstream.journal.sqlite import SqliteStore
from agentstream.journal.tables import CORE, OUTBOX_LANES, SQLITE, render
from agentstream.transports.embedded import EmbeddedTransport, read_topic

V1_EVENTS = """
CREATE TABLE as_events (
    agent TEXT NOT NULL, event_id TEXT NOT NULL, state TEXT NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0, owner TEXT, lease_until REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0, deliveries INTEGER NOT NULL DEFAULT 0, event_key TEXT,
    topic TEXT, partition INTEGER, "offset" INTEGER, timestamp_ms INTEGER, input_hash TEXT,
    group_id TEXT, identity_source TEXT, outcome TEXT, result TEXT, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, completed_at REAL, PRIMARY KEY (agent, event_id)
) WITHOUT ROWID
"""


async def test_a_version_one_journal_is_migrated_in_place(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(V1_EVENTS)
    conn.execute("CREATE TABLE as_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    conn.execute("INSERT INTO as_meta VALUES ('schema_version', '1')")
    conn.execute(
        'INSERT INTO as_events (agent, event_id, state, event_key, topic, partition, "offset", '
        "created_at, updated_at, completed_at, result) "
        "VALUES ('a', 'old', 'completed', 'k', 't', 0, 7, 1.0, 2.0, 2.0, '\"done\"')"
    )
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        old = await store.get_event("a", "old")
        assert old is not None and old.state == EventState.COMPLETED and old.message is None
        assert old.result == "done"
        assert (await store.counts("a"))["parked"] == 0
        assert await store.shadow_runs() == []
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    version = conn.execute("SELECT v FROM as_meta WHERE k = 'schema_version'").fetchone()[0]
    conn.close()
    assert version == "5"


V3_FILE = """
CREATE TABLE log_topics (topic TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE log_partitions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE log_records (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    key BLOB, value BLOB NOT NULL, headers TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,
    dedupe_id TEXT,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE UNIQUE INDEX log_records_dedupe ON log_records (topic, dedupe_id)
    WHERE dedupe_id IS NOT NULL;
INSERT INTO log_topics VALUES ('t', 1);
INSERT INTO log_partitions VALUES ('t', 0, 1);
INSERT INTO log_records VALUES ('t', 0, 0, x'6b', x'6f6c64', '[]', 5, 'd0');
INSERT INTO as_outbox (agent, event_id, seq, topic, key, value, headers, created_at)
    VALUES ('a', 'old', 0, 'out', x'6b', x'6f6c64', '[]', 1.0);
INSERT INTO as_parked (agent, event_id, event_key, topic, partition, "offset", timestamp_ms, key,
    value, headers, created_at) VALUES ('a', 'p-old', 'k', 't', 0, 1, 5, x'6b', x'', '[]', 1.0);
"""
"""An embedded log from before it accepted null values, and rows of a version-3 journal."""


def indexes(conn: sqlite3.Connection, table: str) -> set[str]:
    return {
        r[1] for r in conn.execute(f"PRAGMA index_list({table})") if r[1].startswith(("as", "log"))
    }


async def test_a_journal_and_a_log_from_before_tombstones_keep_their_rows_and_take_nulls(tmp_path):
    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path)
    # Given a version-3 file: outbox and parked values NOT NULL, log values NOT NULL, with rows
    for statement in [*render(CORE, SQLITE).split(";"), render(OUTBOX_LANES, SQLITE)]:
        conn.execute(statement)
    conn.executescript(V3_FILE)
    conn.close()

    # When the journal opens it and a tombstone is parked
    store = SqliteStore(path)
    await store.open()
    try:
        assert [r.record.value for r in await store.outbox("a", "old")] == [b"old"]
        assert [p.message.value for p in await store.parked("a", key="k")] == [b""]
        tombstone = Message("t", 0, 2, b"k", None, timestamp_ms=5)
        await store.park("a", "p-new", "k", tombstone)
        assert [p.message.value for p in await store.parked("a", key="k")] == [b"", None]
    finally:
        await store.close()
    # and the log takes a tombstone
    log = EmbeddedTransport(path)
    await log.start()
    try:
        await log.produce(
            [OutgoingRecord("t", b"k", None, (), "d1"), OutgoingRecord("t", b"k", b"old", (), "d0")]
        )
    finally:
        await log.close()

    # Then the old rows are there, the new null values too, and every index came back
    assert [(m.offset, m.value) for m in read_topic(path, "t")] == [(0, b"old"), (1, None)]
    conn = sqlite3.connect(path)
    try:
        assert indexes(conn, "as_outbox") == {
            "as_outbox_pending",
            "as_outbox_event",
            "as_outbox_lane",
        }
        assert indexes(conn, "as_parked") >= {"as_parked_key"}
        assert indexes(conn, "log_records") >= {"log_records_dedupe"}
        notnull = {
            t: {r[1]: r[3] for r in conn.execute(f"PRAGMA table_info({t})")}["value"]
            for t in ("as_outbox", "as_parked", "log_records")
        }
        assert notnull == {"as_outbox": 0, "as_parked": 0, "log_records": 0}
    finally:
        conn.close()
