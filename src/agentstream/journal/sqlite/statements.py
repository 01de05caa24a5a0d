"""Statements the SQLite journal's operations share (run inside one write transaction)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from agentstream.event import OutgoingRecord, encode_headers
from agentstream.journal.lifecycle import ClaimRow, fenced
from agentstream.journal.packing import stored_message_values
from agentstream.journal.records import EventMeta, EventState, StepRecord
from agentstream.journal.rows import STEP_COLUMNS, step_from_row
from agentstream.journal.sqlite.blobs import put_blobs

_BOUND = 500
"""Most ids bound in one ``IN (...)`` (SQLite caps bound parameters)."""


def chunks(items: list[str], size: int = _BOUND) -> list[list[str]]:
    """``items`` in lists of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def claim_rows(conn: sqlite3.Connection, agent: str, ids: list[str]) -> dict[str, ClaimRow]:
    """What a claim reads of the events among ``ids`` that have rows."""
    rows: dict[str, ClaimRow] = {}
    for chunk in chunks(ids):
        marks = ",".join("?" * len(chunk))
        for event_id, state, epoch, lease_until, attempts in conn.execute(
            "SELECT event_id, state, epoch, lease_until, attempts FROM as_events "
            f"WHERE agent = ? AND event_id IN ({marks})",
            (agent, *chunk),
        ):
            rows[event_id] = ClaimRow(EventState(state), epoch, lease_until, attempts)
    return rows


def current_claims(conn: sqlite3.Connection, agent: str, ids: list[str]) -> set[tuple[str, int]]:
    """The ``(event_id, epoch)`` claims among ``ids`` that are live."""
    return {
        (event_id, row.epoch)
        for event_id, row in claim_rows(conn, agent, ids).items()
        if row.state == EventState.CLAIMED
    }


def insert_fresh(
    conn: sqlite3.Connection,
    agent: str,
    fresh: dict[str, EventMeta],
    owner: str,
    until: float,
    now: float,
) -> None:
    """Insert the rows of events seen for the first time, claimed under epoch 1.

    A message value that splits into blob segments is stored so, its blobs in the same
    transaction (:mod:`agentstream.journal.packing`).
    """
    values, blobs = stored_message_values(m.message for m in fresh.values())
    put_blobs(conn, blobs, now)
    conn.executemany(
        "INSERT INTO as_events (agent, event_id, state, epoch, owner, lease_until, "
        'attempts, deliveries, event_key, topic, partition, "offset", timestamp_ms, '
        "input_hash, group_id, identity_source, created_at, updated_at, msg_key, "
        "msg_value, msg_headers, msg_packed) "
        "VALUES (?, ?, 'claimed', 1, ?, ?, 1, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                agent,
                event_id,
                owner,
                until,
                m.key,
                m.topic,
                m.partition,
                m.offset,
                m.timestamp_ms,
                m.input_hash,
                m.group_id,
                m.identity_source,
                now,
                now,
                None if m.message is None else m.message.key,
                value,
                None if m.message is None else encode_headers(m.message.headers),
                packed,
            )
            for (event_id, m), (value, packed) in zip(fresh.items(), values, strict=True)
        ],
    )


def steps_of(conn: sqlite3.Connection, agent: str, event_id: str) -> tuple[StepRecord, ...]:
    """An event's recorded steps in order."""
    return tuple(
        step_from_row(r)
        for r in conn.execute(
            f"SELECT {STEP_COLUMNS} FROM as_steps WHERE agent = ? AND event_id = ? ORDER BY seq",
            (agent, event_id),
        )
    )


def fence(conn: sqlite3.Connection, agent: str, event_id: str, epoch: int, now: float) -> None:
    """Touch the event if ``epoch`` still holds it; raise FencedError otherwise."""
    cur = conn.execute(
        "UPDATE as_events SET updated_at = ? WHERE agent = ? AND event_id = ? AND epoch = ? "
        "AND state = 'claimed'",
        (now, agent, event_id, epoch),
    )
    if cur.rowcount != 1:
        raise fenced(agent, event_id, epoch)


def append_outbox(
    conn: sqlite3.Connection,
    agent: str,
    event_id: str,
    outputs: Sequence[OutgoingRecord],
    now: float,
) -> None:
    """Queue records in an event's outbox, numbered after its existing rows."""
    if not outputs:
        return
    first_seq = conn.execute(
        "SELECT COALESCE(MAX(seq) + 1, 0) FROM as_outbox WHERE agent = ? AND event_id = ?",
        (agent, event_id),
    ).fetchone()[0]
    insert_outbox(conn, agent, event_id, outputs, now, first_seq)


def insert_outbox(
    conn: sqlite3.Connection,
    agent: str,
    event_id: str,
    outputs: Sequence[OutgoingRecord],
    now: float,
    first_seq: int = 0,
) -> None:
    """Queue records in the outbox, numbering them from ``first_seq``."""
    conn.executemany(
        "INSERT INTO as_outbox (agent, event_id, seq, topic, key, value, headers, dedupe_id, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                agent,
                event_id,
                first_seq + i,
                rec.topic,
                rec.key,
                rec.value,
                encode_headers(rec.headers),
                rec.dedupe_id,
                now,
            )
            for i, rec in enumerate(outputs)
        ],
    )


def run_select(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of one query."""
    return conn.execute(sql, tuple(args)).fetchall()
