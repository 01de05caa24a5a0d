"""Queries both SQL journals share: filters, and the statements written the same for both.

The SQLite and PostgreSQL journals have the same tables and columns; only the table names
(PostgreSQL prefixes its schema) and the parameter markers differ. Builders here take the table
prefix (``""`` for SQLite, ``"{s}."`` for PostgreSQL, whose store substitutes the schema) and
write ``?`` markers, which the PostgreSQL store turns into ``%s`` (no query here has a literal
``?``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentstream.journal.lifecycle import BLOCKING_STATUSES, sql_list
from agentstream.journal.records import EventState
from agentstream.journal.rows import DLQ_COLUMNS, PARKED_COLUMNS

BLOCKING = sql_list(BLOCKING_STATUSES)
"""The dead-letter statuses that hold a key's later events back, as an SQL list."""
FINISHED = sql_list((EventState.COMPLETED, EventState.DEAD))
"""The states of a finished event, as an SQL list."""

Query = tuple[str, tuple[Any, ...]]


class Where:
    """A WHERE clause built from optional conditions (None means "no condition")."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._args: list[Any] = []

    def eq(self, column: str, value: Any) -> Where:
        """``column = value`` when value is not None."""
        return self.cmp(column, "=", value)

    def cmp(self, column: str, op: str, value: Any) -> Where:
        """``column <op> value`` when value is not None."""
        if value is not None:
            self._parts.append(f"{column} {op} ?")
            self._args.append(str(value) if hasattr(value, "value") else value)
        return self

    def within(self, column: str, values: Sequence[Any] | None) -> Where:
        """``column IN (values)`` when values is not None."""
        if values is not None:
            self._parts.append(f"{column} IN ({', '.join('?' for _ in values) or 'NULL'})")
            self._args.extend(values)
        return self

    @property
    def sql(self) -> str:
        """The clause, or the empty string."""
        return "WHERE " + " AND ".join(self._parts) if self._parts else ""

    @property
    def args(self) -> tuple[Any, ...]:
        """Its parameters."""
        return tuple(self._args)


def _limited(sql: str, args: tuple[Any, ...], limit: int | None) -> Query:
    return (sql, args) if limit is None else (sql + " LIMIT ?", (*args, limit))


def events_query(
    prefix: str,
    columns: str,
    *,
    agent: str | None,
    state: EventState | None,
    key: str | None,
    since: float | None,
    until: float | None,
    topic: str | None,
    partition: int | None,
    offset_from: int | None,
    offset_to: int | None,
    event_ids: Sequence[str] | None,
    oldest_first: bool,
    limit: int | None,
) -> Query:
    """The ``Store.list_events`` query over ``{prefix}as_events``."""
    where = Where()
    where.eq("agent", agent).eq("state", state).eq("event_key", key).eq("topic", topic)
    where.eq("partition", partition).cmp("created_at", ">=", since)
    where.cmp("created_at", "<", until).cmp('"offset"', ">=", offset_from)
    where.cmp('"offset"', "<=", offset_to).within("event_id", event_ids)
    order = 'created_at, topic, partition, "offset"' if oldest_first else "updated_at DESC"
    sql = f"SELECT {columns} FROM {prefix}as_events {where.sql} ORDER BY {order}"
    return _limited(sql, where.args, limit)


def dead_letters_query(
    prefix: str,
    *,
    agent: str | None,
    status: str | None,
    failure_class: str | None,
    key: str | None,
    since: float | None,
    until: float | None,
    limit: int | None,
) -> Query:
    """The ``Store.dead_letters`` query (newest first) over ``{prefix}as_dead_letters``."""
    where = Where()
    where.eq("agent", agent).eq("status", status).eq("failure_class", failure_class)
    where.eq("event_key", key).cmp("created_at", ">=", since).cmp("created_at", "<", until)
    sql = f"SELECT {DLQ_COLUMNS} FROM {prefix}as_dead_letters {where.sql} ORDER BY id DESC"
    return _limited(sql, where.args, limit)


def parked_query(
    prefix: str, agent: str, *, key: str | None, releasable: bool, limit: int
) -> Query:
    """The ``Store.parked`` query (arrival order) over ``{prefix}as_parked``."""
    where = Where().eq("p.agent", agent).eq("p.event_key", key)
    sql = f"SELECT {', '.join('p.' + c.strip() for c in PARKED_COLUMNS.split(','))} "
    sql += f"FROM {prefix}as_parked p {where.sql}"
    if releasable:
        sql += (
            f" {'AND' if where.sql else 'WHERE'} NOT EXISTS (SELECT 1 FROM "
            f"{prefix}as_dead_letters d WHERE d.agent = p.agent AND d.event_key = p.event_key "
            f"AND d.status IN {BLOCKING}) AND NOT EXISTS "
            f"({holding_wait(prefix, 'p.agent', 'p.event_key')})"
        )
    return sql + " ORDER BY p.id LIMIT ?", (*where.args, limit)


def claimable_outbox(prefix: str, columns: str) -> str:
    """Outbox rows one relay may claim, oldest first (see ``Store.claim_outbox``).

    Lapsed or the relay's own, and not behind an earlier unpublished row of their topic and key
    that another relay holds or that is deferred. Parameters: now, owner, now, owner, limit.
    """
    return (
        f"SELECT {columns} FROM {prefix}as_outbox AS o "
        "WHERE o.published_at IS NULL AND (o.relay_lease < ? OR o.relay_owner = ?) "
        f"AND (o.key IS NULL OR NOT EXISTS (SELECT 1 FROM {prefix}as_outbox AS e "
        "WHERE e.topic = o.topic AND e.key = o.key AND e.id < o.id AND e.published_at IS NULL "
        # a deferred row has no owner: COALESCE keeps the test two-valued in both dialects
        "AND NOT (e.relay_lease < ? OR COALESCE(e.relay_owner, '') = ?))) "
        "ORDER BY o.id LIMIT ?"
    )


def holding_wait(prefix: str, agent: str, key: str) -> str:
    """SQL: a waiting (or woken, unfinished) event that holds the key ``{agent}.{key}``."""
    return (
        f"SELECT w.event_id FROM {prefix}as_waits w JOIN {prefix}as_events e "
        "ON e.agent = w.agent AND e.event_id = w.event_id "
        f"WHERE w.agent = {agent} AND w.event_key = {key} AND w.holds_key = 1 "
        f"AND e.state NOT IN {FINISHED}"
    )


def blocker_query(prefix: str) -> str:
    """The event that blocks a key (parameters: agent, key).

    Its open dead letter's event, else an event of the key that waits while holding it.
    """
    return (
        "WITH k (agent, event_key) AS (SELECT CAST(? AS TEXT), CAST(? AS TEXT)) "
        "SELECT event_id FROM ("
        f"SELECT d.event_id, 0 AS o, d.id AS n FROM {prefix}as_dead_letters d, k "
        "WHERE d.agent = k.agent AND d.event_key = k.event_key "
        f"AND d.status IN {BLOCKING} UNION ALL SELECT w.event_id, 1, 0 FROM k "
        f"JOIN {prefix}as_waits w ON w.agent = k.agent AND w.event_key = k.event_key "
        f"JOIN {prefix}as_events e ON e.agent = w.agent AND e.event_id = w.event_id "
        f"WHERE w.holds_key = 1 AND e.state NOT IN {FINISHED}"
        ") b ORDER BY o, n LIMIT 1"
    )


def parked_event_query(prefix: str) -> str:
    """Whether an event is parked (parameters: agent, event_id)."""
    return f"SELECT 1 FROM {prefix}as_parked WHERE agent = ? AND event_id = ?"


def parked_key_query(prefix: str) -> str:
    """Whether a key has parked events (parameters: agent, key)."""
    return f"SELECT 1 FROM {prefix}as_parked WHERE agent = ? AND event_key = ? LIMIT 1"
