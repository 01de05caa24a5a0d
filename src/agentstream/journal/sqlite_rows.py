"""Row mapping and shared statements of the SQLite journal."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from agentstream.event import Message, OutgoingRecord, decode_headers, encode_headers
from agentstream.failures import FencedError
from agentstream.journal.base import (
    Claim,
    ClaimStatus,
    EventRecord,
    EventState,
    OutboxRow,
    StepKind,
    StepRecord,
    StepStatus,
)
from agentstream.journal.sqlite_ops import loads
from agentstream.journal.sqlite_schema import STEP_COLUMNS


def step_from_row(row: Sequence[Any]) -> StepRecord:
    """A step from an ``as_steps`` row (columns in STEP_COLUMNS order)."""
    return StepRecord(
        seq=row[0],
        kind=StepKind(row[1]),
        name=row[2],
        fingerprint=row[3],
        status=StepStatus(row[4]),
        request=loads(row[5]),
        result=loads(row[6]),
        idempotency_key=row[7],
        meta=loads(row[8]) or {},
        epoch=row[9],
        started_at=row[10],
        finished_at=row[11],
    )


def event_from_row(row: Sequence[Any]) -> EventRecord:
    """An event from an ``as_events`` row (columns in EVENT_COLUMNS order)."""
    message = None
    if row[22] is not None and row[9] is not None:
        message = Message(
            topic=row[9],
            partition=row[10],
            offset=row[11],
            key=row[21],
            value=row[22],
            headers=decode_headers(row[23]),
            timestamp_ms=row[12] or 0,
        )
    return EventRecord(
        agent=row[0],
        event_id=row[1],
        state=EventState(row[2]),
        epoch=row[3],
        owner=row[4],
        lease_until=row[5],
        attempts=row[6],
        deliveries=row[7],
        key=row[8],
        topic=row[9],
        partition=row[10],
        offset=row[11],
        timestamp_ms=row[12],
        input_hash=row[13],
        group_id=row[14],
        outcome=row[15],
        result=loads(row[16]),
        created_at=row[17],
        updated_at=row[18],
        completed_at=row[19],
        identity_source=row[20],
        message=message,
    )


def outbox_from_row(row: Sequence[Any]) -> OutboxRow:
    """An outbox row."""
    return OutboxRow(
        id=row[0],
        agent=row[1],
        event_id=row[2],
        seq=row[3],
        record=OutgoingRecord(
            topic=row[4],
            key=row[5],
            value=row[6],
            headers=decode_headers(row[7]),
            dedupe_id=row[8],
        ),
        published_at=row[9],
    )


def chunks(items: list[str], size: int) -> list[list[str]]:
    """``items`` in lists of at most ``size`` (SQLite caps bound parameters)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def claim_existing(
    conn: sqlite3.Connection, agent: str, event_id: str, owner: str, now: float, lease_s: float
) -> Claim:
    """Claim an event that already has a journal row."""
    state, epoch, lease_until, attempts = conn.execute(
        "SELECT state, epoch, lease_until, attempts FROM as_events "
        "WHERE agent = ? AND event_id = ?",
        (agent, event_id),
    ).fetchone()
    if state in (EventState.COMPLETED, EventState.DEAD):
        # A delivery of a settled event: count it (duplicates detected). Busy answers are not
        # counted, since the same delivery asks again until the holder lets go.
        conn.execute(
            "UPDATE as_events SET deliveries = deliveries + 1 WHERE agent = ? AND event_id = ?",
            (agent, event_id),
        )
        status = ClaimStatus.COMPLETED if state == EventState.COMPLETED else ClaimStatus.DEAD
        return Claim(status, epoch, attempts)
    if lease_until > now:
        return Claim(ClaimStatus.BUSY, epoch, attempts, lease_until)
    epoch += 1
    attempts += 1
    conn.execute(
        "UPDATE as_events SET state = 'claimed', epoch = ?, owner = ?, lease_until = ?, "
        "attempts = ?, deliveries = deliveries + 1, updated_at = ? "
        "WHERE agent = ? AND event_id = ?",
        (epoch, owner, now + lease_s, attempts, now, agent, event_id),
    )
    steps = tuple(
        step_from_row(r)
        for r in conn.execute(
            f"SELECT {STEP_COLUMNS} FROM as_steps WHERE agent = ? AND event_id = ? ORDER BY seq",
            (agent, event_id),
        )
    )
    return Claim(ClaimStatus.CLAIMED, epoch, attempts, now + lease_s, steps)


def fence(conn: sqlite3.Connection, agent: str, event_id: str, epoch: int, now: float) -> None:
    """Touch the event if ``epoch`` still holds it; raise FencedError otherwise."""
    cur = conn.execute(
        "UPDATE as_events SET updated_at = ? WHERE agent = ? AND event_id = ? AND epoch = ? "
        "AND state = 'claimed'",
        (now, agent, event_id, epoch),
    )
    if cur.rowcount != 1:
        raise FencedError(f"claim on {agent}/{event_id} at epoch {epoch} is no longer current")


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


def filters(**conditions: Any) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause and its arguments for the conditions that are not None."""
    parts = [f"{name} = ?" for name, value in conditions.items() if value is not None]
    args = tuple(str(v) for v in conditions.values() if v is not None)
    return ("WHERE " + " AND ".join(parts) if parts else ""), args
