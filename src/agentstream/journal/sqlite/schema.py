"""The SQLite journal's schema and its migrations."""

from __future__ import annotations

import sqlite3

from agentstream.journal.tables import BLOBS, CORE, OUTBOX_LANES, SQLITE, WAITS, render

SCHEMA_VERSION = 3

SCHEMA = ";".join(
    [
        "CREATE TABLE IF NOT EXISTS as_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
        render(CORE, SQLITE),
        render(OUTBOX_LANES, SQLITE),
        render(BLOBS, SQLITE),
        render(WAITS, SQLITE),
    ]
)
"""Every table and index, created if missing (:mod:`agentstream.journal.tables` in SQLite's
dialect)."""


ADDED_EVENT_COLUMNS = (("msg_key", "BLOB"), ("msg_value", "BLOB"), ("msg_headers", "TEXT"))
"""Columns added to ``as_events`` after version 1 (a version-1 file gets them in place)."""


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
