"""A journal written before packed values (schema version 3, ``fixtures/journal_v3.sql``, made
by that version's code) opens with today's code on SQLite and on PostgreSQL: old rows read as
they were written, its recorded history replays identically, and new events beside them are
stored packed (one copy of the payload's text, shared with the prompt and the dead letter)."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from agentstream.journal import Store
from agentstream.journal.postgres import PostgresStore
from agentstream.journal.postgres.schema import MIGRATIONS, quote_ident
from agentstream.journal.sqlite import SqliteStore
from agentstream.replay import replay_recorded
from agentstream.testing import AppHarness
from tests.ops.apps import Ticket, make_app
from tests.ops.fixtures.make_journal_v3 import TEXT, WORK
from tests.services import postgres_dsn

DUMP = Path(__file__).parent / "fixtures" / "journal_v3.sql"
COPIED = ("as_events", "as_steps", "as_blobs", "as_failures", "as_outbox", "as_dead_letters")


def load_v3(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.executescript(DUMP.read_text())
    return conn


def old_rows(conn: sqlite3.Connection, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    quoted = ", ".join(f'"{c}"' for c in columns)
    return columns, conn.execute(f"SELECT {quoted} FROM {table}").fetchall()


async def check_old_history(store: Store, v3: sqlite3.Connection, app_url: str, work: Path) -> None:
    """Old rows read back as written, and the old history replays with zero model calls."""
    for event_id, value in v3.execute("SELECT event_id, msg_value FROM as_events"):
        event = await store.get_event("triage", event_id)
        assert event is not None and event.message is not None
        assert event.message.value == value
    (letter,) = await store.dead_letters(agent="triage")
    (stored,) = v3.execute("SELECT envelope FROM as_dead_letters").fetchone()
    assert letter.envelope == json.loads(stored)
    report = await replay_recorded(make_app(app_url, work, fixed=False), "triage", store)
    assert report.ok and report.model_calls == 0
    assert report.count("identical") == 4 and len(report.results) == 4  # old4 is dead


async def check_new_events_beside(store: Store, app_url: str, work: Path) -> None:
    """Events written now (to the migrated journal) are packed and replay too."""
    new = [
        Ticket(id=f"new{i}", customer="cust9", text=f"ticket new{i}: {TEXT * 2}", bug=i == 2)
        for i in range(3)
    ]
    async with AppHarness(make_app(app_url, work, fixed=False)) as h:
        await h.produce("tickets", new, key=lambda t: t.customer)
        await h.wait_drained()
    for ticket in new:
        event = await store.get_event("triage", ticket.id)
        assert event is not None and event.message is not None
        assert json.loads(event.message.value)["text"] == ticket.text
    letters = {d.event_id: d for d in await store.dead_letters(agent="triage")}
    assert set(letters) == {"old4", "new2"}
    new2 = await store.get_event("triage", "new2")
    assert new2 is not None and new2.message is not None
    original = letters["new2"].envelope["original"]
    assert base64.b64decode(original["value_b64"]) == new2.message.value
    report = await replay_recorded(make_app(app_url, work, fixed=False), "triage", store)
    assert report.ok and report.model_calls == 0
    assert report.count("identical") == 6


async def test_a_version_3_sqlite_journal_opens_reads_and_replays(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recorded effect names a file in ./work
    WORK.mkdir()
    path = WORK / "as.db"
    load_v3(path).close()
    v3 = load_v3(WORK / "v3.db")  # an untouched copy to compare with
    url = f"sqlite:///{path}"
    store = SqliteStore(path)
    await store.open()
    try:
        await check_old_history(store, v3, url, WORK)
        await check_new_events_beside(store, url, WORK)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT v FROM as_meta WHERE k = 'schema_version'").fetchone() == ("5",)
    # old rows kept their layout; the new ones hold one copy of the text, in a shared blob
    old_values = conn.execute(
        "SELECT COUNT(*) FROM as_events WHERE event_id LIKE 'old%' AND msg_value IS NOT NULL "
        "AND msg_packed IS NULL"
    ).fetchone()
    new_values = conn.execute(
        "SELECT COUNT(*) FROM as_events WHERE event_id LIKE 'new%' AND msg_value IS NULL "
        "AND msg_packed IS NOT NULL"
    ).fetchone()
    assert (old_values, new_values) == ((5,), (3,))
    text = json.dumps("ticket new1: " + TEXT * 2)
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM as_blobs WHERE body_z IS NOT NULL OR body = ?", (text,)
        ).fetchone()[0]
        >= 3
    )
    (envelope,) = conn.execute(
        "SELECT envelope FROM as_dead_letters WHERE event_id = 'new2'"
    ).fetchone()
    assert "value_segments" in json.loads(envelope)["original"]
    assert TEXT not in envelope  # the dead letter references the payload's blob
    conn.close()
    v3.close()


async def test_a_version_3_postgres_journal_opens_reads_and_replays(
    tmp_path, monkeypatch, pg_schema
):
    monkeypatch.chdir(tmp_path)  # the recorded effect names a file in ./work
    WORK.mkdir()
    # Given the same journal in PostgreSQL's layout of that version (migrations 1-4)
    v3 = load_v3(WORK / "v3.db")
    s = quote_ident(pg_schema)
    async with await psycopg.AsyncConnection.connect(postgres_dsn(), autocommit=True) as conn:
        await conn.execute(f"CREATE SCHEMA {s}")
        await conn.execute(
            f"CREATE TABLE {s}.as_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        for version, name, statements in MIGRATIONS[:4]:
            for statement in statements.replace("{s}", s).split(";"):
                if statement.strip():
                    await conn.execute(statement)
            await conn.execute(f"INSERT INTO {s}.as_migrations VALUES (%s, %s, 0)", (version, name))
        for table in COPIED:
            columns, rows = old_rows(v3, table)
            if rows:
                await conn.cursor().executemany(
                    sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                        sql.Identifier(pg_schema, table),
                        sql.SQL(", ").join(map(sql.Identifier, columns)),
                        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                    ),
                    rows,
                )
    # When today's code opens it, Then it migrates, reads and replays it
    store = PostgresStore(postgres_dsn(), schema=pg_schema)
    await store.open()
    try:
        await check_old_history(store, v3, f"sqlite:///{WORK / 'log.db'}", WORK)
    finally:
        await store.close()
    v3.close()
