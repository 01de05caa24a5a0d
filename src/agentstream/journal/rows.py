"""Rows of the journal's tables and the records they map to, the same for every backend.

The SQLite and PostgreSQL journals have the same tables and columns in the same order; the
column lists and the mapping between rows and records live here once. JSON values are stored as
their compact text (:func:`dumps`), so a replay reads back exactly what was written; a long
step result is packed (:mod:`agentstream.journal.packing`), and a source message's value may be
split into blob segments, which the reader joins back (:func:`message_value`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentstream.event import Message, OutgoingRecord, decode_headers, encode_headers
from agentstream.journal.packing import join_payload, packed_column, payload_refs, unpacked
from agentstream.journal.records import (
    DeadLetterRecord,
    EventRecord,
    EventState,
    FailureRecord,
    OutboxRow,
    ParkedRecord,
    ShadowRun,
    StepKind,
    StepRecord,
    StepStatus,
)

EVENT_COLUMNS = (
    "agent, event_id, state, epoch, owner, lease_until, attempts, deliveries, event_key, topic, "
    'partition, "offset", timestamp_ms, input_hash, group_id, outcome, result, created_at, '
    "updated_at, completed_at, identity_source, msg_key, msg_value, msg_headers, msg_packed"
)
STEP_COLUMNS = (
    "seq, kind, name, fingerprint, status, request, result, idem_key, meta, epoch, started_at, "
    "finished_at, result_z"
)
OUTBOX_COLUMNS = "id, agent, event_id, seq, topic, key, value, headers, dedupe_id, published_at"
DLQ_COLUMNS = "id, agent, event_id, failure_class, event_key, created_at, status, envelope"
PARKED_COLUMNS = (
    'id, agent, event_id, event_key, topic, partition, "offset", timestamp_ms, key, value, '
    "headers, created_at"
)


def dumps(value: Any) -> str | None:
    """Compact JSON text of a value (None stays NULL)."""
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> Any:
    """Inverse of :func:`dumps`."""
    return None if text is None else json.loads(text)


def step_from_row(row: Sequence[Any]) -> StepRecord:
    """A step from an ``as_steps`` row (columns in STEP_COLUMNS order)."""
    return StepRecord(
        seq=row[0],
        kind=StepKind(row[1]),
        name=row[2],
        fingerprint=row[3],
        status=StepStatus(row[4]),
        request=loads(row[5]),
        result=loads(unpacked(row[6], row[12])),
        idempotency_key=row[7],
        meta=loads(row[8]) or {},
        epoch=row[9],
        started_at=row[10],
        finished_at=row[11],
    )


def packed_refs(rows: Iterable[Sequence[Any]], index: int) -> set[str]:
    """The blob digests the packed message values at ``index`` of ``rows`` reference."""
    found: set[str] = set()
    for row in rows:
        if row[index] is not None:
            found |= payload_refs(row[index])
    return found


def message_value(plain: Any, packed: Any, blobs: Mapping[str, str]) -> bytes | None:
    """A journaled message value: as stored, or joined from its segments and their blobs."""
    if packed is not None:
        return join_payload(packed, blobs)
    return None if plain is None else bytes(plain)


def event_from_row(row: Sequence[Any], blobs: Mapping[str, str] | None = None) -> EventRecord:
    """An event from an ``as_events`` row (columns in EVENT_COLUMNS order).

    ``blobs`` holds the blobs its packed message value references (:func:`packed_refs`).
    """
    message = None
    value = message_value(row[22], row[24], blobs or {})
    # The headers column tells a journaled message from none (a tombstone's value is NULL).
    if row[23] is not None and row[9] is not None:
        message = Message(
            topic=row[9],
            partition=row[10],
            offset=row[11],
            key=row[21],
            value=value,
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


def dead_letter_from_row(r: Sequence[Any]) -> DeadLetterRecord:
    """A dead letter from a row of :data:`DLQ_COLUMNS`."""
    return DeadLetterRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]))


def parked_values(
    agent: str, event_id: str, key: str, message: Message, now: float
) -> tuple[Any, ...]:
    """The values of a new parked row: :data:`PARKED_COLUMNS` without ``id``."""
    return (
        agent,
        event_id,
        key,
        message.topic,
        message.partition,
        message.offset,
        message.timestamp_ms,
        message.key,
        message.value,
        encode_headers(message.headers),
        now,
    )


def parked_from_row(r: Sequence[Any]) -> ParkedRecord:
    """A parked event from a row of :data:`PARKED_COLUMNS`."""
    return ParkedRecord(
        id=r[0],
        agent=r[1],
        event_id=r[2],
        key=r[3],
        message=Message(
            topic=r[4],
            partition=r[5],
            offset=r[6],
            key=r[8],
            value=r[9],
            headers=decode_headers(r[10]),
            timestamp_ms=r[7],
        ),
        created_at=r[11],
    )


def step_values(agent: str, event_id: str, epoch: int, step: StepRecord) -> tuple[Any, ...]:
    """The values of an ``as_steps`` row: agent, event_id, then :data:`STEP_COLUMNS`."""
    result, result_z = packed_column(dumps(step.result))
    return (
        agent,
        event_id,
        step.seq,
        str(step.kind),
        step.name,
        step.fingerprint,
        str(step.status),
        dumps(step.request),
        result,
        step.idempotency_key,
        dumps(step.meta),
        epoch,
        step.started_at,
        step.finished_at,
        result_z,
    )


def shadow_run_values(run: ShadowRun) -> tuple[Any, ...]:
    """The values of an ``as_shadow_runs`` row."""
    return (
        run.run_id,
        run.agent,
        run.candidate,
        run.created_at,
        run.finished_at,
        dumps(run.summary),
    )


def failure_values(
    agent: str, event_id: str, failure: FailureRecord, now: float
) -> tuple[Any, ...]:
    """The values of an ``as_failures`` row (``at`` defaults to ``now``)."""
    f = failure
    return (
        agent,
        event_id,
        f.attempt,
        f.failure_class,
        f.error_type,
        f.message,
        f.traceback,
        f.at or now,
    )
