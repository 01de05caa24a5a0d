"""The SQLite journal's schema and its migrations."""

from __future__ import annotations

import sqlite3

from agentstream.journal.tables import (
    BLOBS_PACKED,
    CORE,
    NULLABLE_VALUES,
    OUTBOX_LANES,
    PACKED_COLUMNS,
    SQLITE,
    STATUS,
    WAITS,
    render,
    without_not_null,
)
from agentstream.sqlite_db import apply_schema

SCHEMA_VERSION = 5

SCHEMA = ";".join(
    [
        "CREATE TABLE IF NOT EXISTS as_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
        render(without_not_null(CORE, NULLABLE_VALUES), SQLITE),
        render(OUTBOX_LANES, SQLITE),
        render(BLOBS_PACKED, SQLITE),
        render(WAITS, SQLITE),
        render(STATUS, SQLITE),
    ]
)
"""Every table and index, created if missing (:mod:`agentstream.journal.tables` in SQLite's
dialect)."""


ADDED_EVENT_COLUMNS = (("msg_key", "BLOB"), ("msg_value", "BLOB"), ("msg_headers", "TEXT"))
"""Columns added to ``as_events`` after version 1 (a version-1 file gets them in place)."""


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def _rebuild_blobs(conn: sqlite3.Connection) -> None:
    """A file from before version 4: its blob table in the packed layout, rows kept as text.

    The old table is WITHOUT ROWID with ``body NOT NULL``; the blob table is usually small next
    to the events and steps, which keep their tables and only gain columns.
    """
    conn.execute("ALTER TABLE as_blobs RENAME TO as_blobs_v3")
    conn.execute("DROP INDEX IF EXISTS as_blobs_used")
    for statement in render(BLOBS_PACKED, SQLITE).split(";"):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO as_blobs (digest, body, created_at, used_at) "
        "SELECT digest, body, created_at, used_at FROM as_blobs_v3"
    )
    conn.execute("DROP TABLE as_blobs_v3")


def migrate(conn: sqlite3.Connection) -> None:
    """Create the schema, or bring an older file up to :data:`SCHEMA_VERSION` in place."""
    if "digest" in _columns(conn, "as_blobs") and "body_z" not in _columns(conn, "as_blobs"):
        _rebuild_blobs(conn)
    apply_schema(conn, SCHEMA, NULLABLE_VALUES)  # files from before tombstones: NOT NULL values
    have = _columns(conn, "as_events")
    for column, kind in ADDED_EVENT_COLUMNS:
        if column not in have:  # a version-1 file: add the columns, keep the rows
            conn.execute(f"ALTER TABLE as_events ADD COLUMN {column} {kind}")
    for table, column in PACKED_COLUMNS:  # new files too: CORE is the released layout
        if column not in _columns(conn, table):
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} BLOB")
    conn.execute(
        "INSERT INTO as_meta (k, v) VALUES ('schema_version', ?) "
        "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        (str(SCHEMA_VERSION),),
    )
