"""Shared statements and parameter shaping of the PostgreSQL journal.

Batches travel as arrays (``unnest(%s::text[], ...)``), so a batch of any size is one statement
and one round trip. Rows read back are mapped by :mod:`agentstream.journal.rows`, as for
every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentstream.event import OutgoingRecord, encode_headers
from agentstream.journal.packing import stored_message_values
from agentstream.journal.records import EventMeta
from agentstream.journal.rows import OUTBOX_COLUMNS

__all__ = [
    "COMPLETE",
    "COMPLETE_EFFECTS",
    "INSERT_FRESH",
    "INSERT_OUTBOX",
    "OUTBOX_COLUMNS",
    "fresh_arrays",
    "outbox_arrays",
    "pg_where",
]


INSERT_OUTBOX = (
    "INSERT INTO {s}.as_outbox (agent, event_id, seq, topic, key, value, headers, dedupe_id, "
    "created_at) SELECT %(agent)s, %(event_id)s, "
    "(SELECT COALESCE(MAX(seq) + 1, 0) FROM {s}.as_outbox WHERE agent = %(agent)s "
    "AND event_id = %(event_id)s) + o.n - 1, o.topic, o.key, o.value, o.headers, o.dedupe_id, "
    "%(now)s FROM unnest(%(topics)s::text[], %(keys)s::bytea[], %(values)s::bytea[], "
    "%(headers)s::text[], %(dedupe_ids)s::text[]) WITH ORDINALITY "
    "AS o(topic, key, value, headers, dedupe_id, n) ORDER BY o.n"
)
"""Append records to an event's outbox, numbered after its existing rows (params from
:func:`outbox_arrays` plus ``agent``, ``event_id`` and ``now``)."""


def outbox_arrays(records: Sequence[OutgoingRecord]) -> dict[str, list[Any]]:
    """The column arrays of outbox records, as named parameters."""
    return {
        "topics": [r.topic for r in records],
        "keys": [r.key for r in records],
        "values": [r.value for r in records],
        "headers": [encode_headers(r.headers) for r in records],
        "dedupe_ids": [r.dedupe_id for r in records],
    }


def pg_where(clause: str) -> str:
    """A query built by :mod:`agentstream.journal.queries` with psycopg markers.

    Those builders only ever write ``?`` as a parameter marker (values travel as parameters),
    so the replacement is exact.
    """
    return clause.replace("?", "%s")


INSERT_FRESH = (
    "INSERT INTO {s}.as_events (agent, event_id, state, epoch, owner, lease_until, attempts, "
    'deliveries, event_key, topic, partition, "offset", timestamp_ms, input_hash, group_id, '
    "identity_source, created_at, updated_at, msg_key, msg_value, msg_headers, msg_packed) "
    "SELECT %(agent)s, i.event_id, 'claimed', 1, %(owner)s, %(until)s, 1, 1, i.event_key, "
    'i.topic, i.partition, i."offset", i.timestamp_ms, i.input_hash, i.group_id, '
    "i.identity_source, %(now)s, %(now)s, i.msg_key, i.msg_value, i.msg_headers, i.msg_packed "
    "FROM unnest(%(ids)s::text[], %(keys)s::text[], %(topics)s::text[], %(partitions)s::int[], "
    "%(offsets)s::bigint[], %(timestamps)s::bigint[], %(hashes)s::text[], %(groups)s::text[], "
    "%(sources)s::text[], %(msg_keys)s::bytea[], %(msg_values)s::bytea[], "
    "%(msg_headers)s::text[], %(msg_packeds)s::bytea[]) AS i(event_id, event_key, topic, "
    'partition, "offset", timestamp_ms, input_hash, group_id, identity_source, msg_key, '
    "msg_value, msg_headers, msg_packed) "
    "ORDER BY i.event_id ON CONFLICT (agent, event_id) DO NOTHING RETURNING event_id"
)

COMPLETE = (
    "UPDATE {s}.as_events SET state = 'completed', owner = NULL, lease_until = 0, "
    "outcome = %s, result = %s, completed_at = %s, updated_at = %s "
    "WHERE agent = %s AND event_id = %s AND epoch = %s AND (state = 'claimed') IS TRUE "
    "RETURNING event_id, epoch"
)
"""Complete one item if its claim is current (the fence); run once per item, pipelined.

Per-row statements on the full primary key, rather than one join against an array: their plan
is a primary-key probe whatever the table's statistics say (a fresh journal has none)."""

COMPLETE_EFFECTS = """
WITH outbox AS (
    INSERT INTO {s}.as_outbox (agent, event_id, seq, topic, key, value, headers, dedupe_id,
        created_at)
    SELECT %(agent)s, o.event_id, o.seq, o.topic, o.key, o.value, o.headers, o.dedupe_id, %(now)s
    FROM unnest(%(o_ids)s::text[], %(o_seqs)s::int[], %(topics)s::text[], %(keys)s::bytea[],
        %(values)s::bytea[], %(headers)s::text[], %(dedupe_ids)s::text[]) WITH ORDINALITY
        AS o(event_id, seq, topic, key, value, headers, dedupe_id, n)
    ORDER BY o.n
), versions AS (
    INSERT INTO {s}.as_entity_versions AS v (agent, entity, version)
    SELECT %(agent)s, x.entity, MAX(x.version)
    FROM unnest(%(entities)s::text[], %(versions)s::bigint[]) AS x(entity, version)
    GROUP BY x.entity ORDER BY x.entity
    ON CONFLICT (agent, entity) DO UPDATE SET version = GREATEST(v.version, EXCLUDED.version)
)
UPDATE {s}.as_dead_letters SET status = 'resolved'
WHERE agent = %(agent)s AND status = 'redriven' AND event_id = ANY(%(ids)s::text[])
"""
"""What the completed items of a batch write besides their rows, in one statement: outbox
records, entity versions (only forward) and the resolution of a redriven dead letter."""


def fresh_arrays(fresh: dict[str, EventMeta]) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """Column arrays of new events, and the blobs their message values reference.

    Arrays are in id order, the order their rows are locked in; see
    :mod:`agentstream.journal.packing` for the blobs.
    """
    metas = [fresh[event_id] for event_id in sorted(fresh)]
    values, blobs = stored_message_values(m.message for m in metas)
    return {
        "ids": sorted(fresh),
        "keys": [m.key for m in metas],
        "topics": [m.topic for m in metas],
        "partitions": [m.partition for m in metas],
        "offsets": [m.offset for m in metas],
        "timestamps": [m.timestamp_ms for m in metas],
        "hashes": [m.input_hash for m in metas],
        "groups": [m.group_id for m in metas],
        "sources": [m.identity_source for m in metas],
        "msg_keys": [None if m.message is None else m.message.key for m in metas],
        "msg_values": [value for value, _ in values],
        "msg_headers": [
            None if m.message is None else encode_headers(m.message.headers) for m in metas
        ],
        "msg_packeds": [packed for _, packed in values],
    }, blobs
