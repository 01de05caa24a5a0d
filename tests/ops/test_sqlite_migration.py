"""A journal file written before messages were journaled opens, keeps its rows, and gains the
new columns and tables."""

from __future__ import annotations

import sqlite3

from agentstream.journal import EventState
from agentstream.journal.sqlite import SqliteStore

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
