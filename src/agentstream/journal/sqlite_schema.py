"""The SQLite journal's schema and its migrations."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS as_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS as_events (
    agent TEXT NOT NULL,
    event_id TEXT NOT NULL,
    state TEXT NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    deliveries INTEGER NOT NULL DEFAULT 0,
    event_key TEXT,
    topic TEXT,
    partition INTEGER,
    "offset" INTEGER,
    timestamp_ms INTEGER,
    input_hash TEXT,
    group_id TEXT,
    identity_source TEXT,
    outcome TEXT,
    result TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    completed_at REAL,
    msg_key BLOB,
    msg_value BLOB,
    msg_headers TEXT,
    PRIMARY KEY (agent, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS as_events_state ON as_events (agent, state);
CREATE INDEX IF NOT EXISTS as_events_created ON as_events (agent, created_at);
CREATE INDEX IF NOT EXISTS as_events_updated ON as_events (updated_at);
CREATE TABLE IF NOT EXISTS as_steps (
    agent TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT,
    result TEXT,
    idem_key TEXT,
    meta TEXT,
    epoch INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    PRIMARY KEY (agent, event_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS as_failures (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    failure_class TEXT NOT NULL,
    error_type TEXT NOT NULL,
    message TEXT NOT NULL,
    traceback TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS as_failures_event ON as_failures (agent, event_id);
CREATE TABLE IF NOT EXISTS as_outbox (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    dedupe_id TEXT,
    created_at REAL NOT NULL,
    relay_owner TEXT,
    relay_lease REAL NOT NULL DEFAULT 0,
    published_at REAL
);
CREATE INDEX IF NOT EXISTS as_outbox_pending ON as_outbox (id) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS as_outbox_event ON as_outbox (agent, event_id);
CREATE INDEX IF NOT EXISTS as_outbox_lane ON as_outbox (topic, key, id) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS as_dead_letters (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    event_id TEXT NOT NULL,
    failure_class TEXT NOT NULL,
    event_key TEXT,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,
    envelope TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS as_dead_letters_event ON as_dead_letters (agent, event_id);
CREATE INDEX IF NOT EXISTS as_dead_letters_key ON as_dead_letters (agent, event_key, status);
CREATE TABLE IF NOT EXISTS as_parked (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_key TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (agent, event_id)
);
CREATE INDEX IF NOT EXISTS as_parked_key ON as_parked (agent, event_key, id);
CREATE TABLE IF NOT EXISTS as_shadow_runs (
    run_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    candidate TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS as_shadow_results (
    n INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    report TEXT NOT NULL,
    UNIQUE (run_id, event_id)
);
CREATE TABLE IF NOT EXISTS as_blobs (
    digest TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    used_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS as_blobs_used ON as_blobs (used_at);
CREATE TABLE IF NOT EXISTS as_entity_versions (
    agent TEXT NOT NULL,
    entity TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (agent, entity)
) WITHOUT ROWID;
"""

EVENT_COLUMNS = (
    "agent, event_id, state, epoch, owner, lease_until, attempts, deliveries, event_key, topic, "
    'partition, "offset", timestamp_ms, input_hash, group_id, outcome, result, created_at, '
    "updated_at, completed_at, identity_source, msg_key, msg_value, msg_headers"
)
ADDED_EVENT_COLUMNS = (("msg_key", "BLOB"), ("msg_value", "BLOB"), ("msg_headers", "TEXT"))
STEP_COLUMNS = (
    "seq, kind, name, fingerprint, status, request, result, idem_key, meta, epoch, started_at, "
    "finished_at"
)


def migrate(conn: sqlite3.Connection) -> None:
    """Create the schema, or bring an older file up to :data:`SCHEMA_VERSION` in place."""
    # executescript() would COMMIT our group-commit transaction; run statements singly.
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    have = {r[1] for r in conn.execute("PRAGMA table_info(as_events)")}
    for column, kind in ADDED_EVENT_COLUMNS:
        if column not in have:  # a version-1 file: add the columns, keep the rows
            conn.execute(f"ALTER TABLE as_events ADD COLUMN {column} {kind}")
    conn.execute(
        "INSERT INTO as_meta (k, v) VALUES ('schema_version', ?) "
        "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        (str(SCHEMA_VERSION),),
    )
