"""Reads of a SQL journal, written once for SQLite and PostgreSQL.

Both journals have the same tables and columns; a backend only says how to run a query
(:meth:`JournalReads.select`) and where its tables are (:attr:`JournalReads.prefix`: ``""`` for
SQLite, ``"{s}."`` for PostgreSQL, whose store substitutes its schema). Queries are written with
``?`` markers (see :mod:`agentstream.journal.queries`). See
:class:`~agentstream.journal.store.Store` for the contract of each method.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from agentstream.journal.packing import envelope_refs, expand_envelope, unpacked
from agentstream.journal.queries import (
    BLOCKING,
    Where,
    blocker_query,
    dead_letters_query,
    events_query,
    parked_query,
)
from agentstream.journal.records import (
    DeadLetterRecord,
    EventRecord,
    EventState,
    FailureRecord,
    OutboxRow,
    ParkedRecord,
    ShadowResult,
    ShadowRun,
    StepRecord,
)
from agentstream.journal.rows import (
    DLQ_COLUMNS,
    EVENT_COLUMNS,
    OUTBOX_COLUMNS,
    STEP_COLUMNS,
    dead_letter_from_row,
    event_from_row,
    outbox_from_row,
    packed_refs,
    parked_from_row,
    step_from_row,
)
from agentstream.journal.tables import UNPRICED_LLM

PACKED_AT = EVENT_COLUMNS.count(",")
"""Index of ``msg_packed``, the last of :data:`EVENT_COLUMNS`."""

__all__ = ["JournalReads"]


class JournalReads:
    """The read-only queries of a journal; a backend supplies :meth:`select` and :attr:`prefix`."""

    prefix: str = ""
    """What stands before a table's name in a query (``"{s}."`` for a PostgreSQL schema)."""
    percent: str = "%"
    """A literal ``%`` in a query (``%%`` for psycopg, which reads ``%`` as a marker)."""

    async def select(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query written with ``?`` markers."""
        raise NotImplementedError

    async def _first(self, sql: str, args: Sequence[Any]) -> tuple[Any, ...] | None:
        rows = await self.select(sql, args)
        return rows[0] if rows else None

    async def blob_texts(self, digests: Collection[str]) -> dict[str, str]:
        """The stored blob bodies among ``digests`` (the blobs of packed message values)."""
        wanted = sorted(set(digests))
        found: dict[str, str] = {}
        for i in range(0, len(wanted), 500):
            where = Where().within("digest", wanted[i : i + 500])
            for digest, body, body_z in await self.select(
                f"SELECT digest, body, body_z FROM {self.prefix}as_blobs {where.sql}", where.args
            ):
                found[digest] = str(unpacked(body, body_z))
        return found

    async def _dead_letters(self, rows: Sequence[Sequence[Any]]) -> list[DeadLetterRecord]:
        """Dead letters from rows of :data:`DLQ_COLUMNS`, their envelopes expanded."""
        letters = [dead_letter_from_row(r) for r in rows]
        wanted: set[str] = set()
        for letter in letters:
            wanted |= envelope_refs(letter.envelope)
        if not wanted:
            return letters
        blobs = await self.blob_texts(wanted)
        return [replace(d, envelope=expand_envelope(d.envelope, blobs)) for d in letters]

    async def _events(self, rows: Sequence[Sequence[Any]]) -> list[EventRecord]:
        """Events from rows of :data:`EVENT_COLUMNS`, their message values joined."""
        blobs = await self.blob_texts(packed_refs(rows, PACKED_AT))
        return [event_from_row(r, blobs) for r in rows]

    async def applied_version(self, agent: str, entity: str) -> int | None:
        """Highest applied version of an entity."""
        row = await self._first(
            f"SELECT version FROM {self.prefix}as_entity_versions WHERE agent = ? AND entity = ?",
            (agent, entity),
        )
        return None if row is None else int(row[0])

    async def get_event(self, agent: str, event_id: str) -> EventRecord | None:
        """One event's row."""
        row = await self._first(
            f"SELECT {EVENT_COLUMNS} FROM {self.prefix}as_events WHERE agent = ? AND event_id = ?",
            (agent, event_id),
        )
        return None if row is None else (await self._events([row]))[0]

    async def list_events(
        self,
        *,
        agent: str | None = None,
        state: EventState | None = None,
        key: str | None = None,
        since: float | None = None,
        until: float | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset_from: int | None = None,
        offset_to: int | None = None,
        event_ids: Sequence[str] | None = None,
        oldest_first: bool = False,
        limit: int | None = 100,
    ) -> list[EventRecord]:
        """Events filtered (see :meth:`Store.list_events`)."""
        sql, args = events_query(
            self.prefix,
            EVENT_COLUMNS,
            agent=agent,
            state=state,
            key=key,
            since=since,
            until=until,
            topic=topic,
            partition=partition,
            offset_from=offset_from,
            offset_to=offset_to,
            event_ids=event_ids,
            oldest_first=oldest_first,
            limit=limit,
        )
        return await self._events(await self.select(sql, args))

    async def steps(self, agent: str, event_id: str) -> list[StepRecord]:
        """An event's steps in order."""
        rows = await self.select(
            f"SELECT {STEP_COLUMNS} FROM {self.prefix}as_steps WHERE agent = ? AND event_id = ? "
            "ORDER BY seq",
            (agent, event_id),
        )
        return [step_from_row(r) for r in rows]

    async def steps_of(self, agent: str, event_ids: Sequence[str]) -> dict[str, list[StepRecord]]:
        """The steps of several events in order, in one query (replay reads pages)."""
        where = Where().eq("agent", agent).within("event_id", event_ids)
        rows = await self.select(
            f"SELECT {STEP_COLUMNS}, event_id FROM {self.prefix}as_steps {where.sql} "
            "ORDER BY event_id, seq",
            where.args,
        )
        out: dict[str, list[StepRecord]] = {e: [] for e in event_ids}
        for r in rows:
            out[r[-1]].append(step_from_row(r[:-1]))
        return out

    async def outbox_of(self, agent: str, event_ids: Sequence[str]) -> dict[str, list[OutboxRow]]:
        """The outbox rows of several events in order, in one query (replay reads pages)."""
        where = Where().eq("agent", agent).within("event_id", event_ids)
        rows = await self.select(
            f"SELECT {OUTBOX_COLUMNS} FROM {self.prefix}as_outbox {where.sql} "
            "ORDER BY event_id, seq, id",
            where.args,
        )
        out: dict[str, list[OutboxRow]] = {e: [] for e in event_ids}
        for r in rows:
            row = outbox_from_row(r)
            out[row.event_id].append(row)
        return out

    async def failures(self, agent: str, event_id: str) -> list[FailureRecord]:
        """An event's failed attempts in order."""
        rows = await self.select(
            "SELECT attempt, failure_class, error_type, message, traceback, at "
            f"FROM {self.prefix}as_failures WHERE agent = ? AND event_id = ? ORDER BY id",
            (agent, event_id),
        )
        return [FailureRecord(*r) for r in rows]

    async def outbox(self, agent: str, event_id: str) -> list[OutboxRow]:
        """An event's outbox rows in order."""
        rows = await self.select(
            f"SELECT {OUTBOX_COLUMNS} FROM {self.prefix}as_outbox WHERE agent = ? "
            "AND event_id = ? ORDER BY seq, id",
            (agent, event_id),
        )
        return [outbox_from_row(r) for r in rows]

    async def dead_letters(
        self,
        *,
        agent: str | None = None,
        status: str | None = None,
        failure_class: str | None = None,
        key: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = 100,
    ) -> list[DeadLetterRecord]:
        """Dead letters, newest first, filtered."""
        sql, args = dead_letters_query(
            self.prefix,
            agent=agent,
            status=status,
            failure_class=failure_class,
            key=key,
            since=since,
            until=until,
            limit=limit,
        )
        return await self._dead_letters(await self.select(sql, args))

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None:
        """One dead letter by id."""
        row = await self._first(
            f"SELECT {DLQ_COLUMNS} FROM {self.prefix}as_dead_letters WHERE id = ?",
            (dead_letter_id,),
        )
        return None if row is None else (await self._dead_letters([row]))[0]

    async def blocked_by(self, agent: str, key: str) -> str | None:
        """The event whose open dead letter blocks ``key``, if any."""
        row = await self._first(blocker_query(self.prefix), (agent, key))
        return None if row is None else str(row[0])

    async def parked(
        self, agent: str, *, key: str | None = None, releasable: bool = False, limit: int = 1000
    ) -> list[ParkedRecord]:
        """Parked events in arrival order."""
        sql, args = parked_query(self.prefix, agent, key=key, releasable=releasable, limit=limit)
        return [parked_from_row(r) for r in await self.select(sql, args)]

    async def agents(self) -> list[str]:
        """Every agent with at least one event in the journal, sorted.

        A loose index scan: one index probe per agent (the next agent after the last), not a
        pass over every event.
        """
        p = self.prefix
        sql = (
            f"WITH RECURSIVE a(agent) AS (SELECT MIN(agent) FROM {p}as_events UNION ALL "
            f"SELECT (SELECT MIN(e.agent) FROM {p}as_events e WHERE e.agent > a.agent) FROM a "
            "WHERE a.agent IS NOT NULL) SELECT agent FROM a WHERE agent IS NOT NULL"
        )
        rows = await self.select(sql)
        return [str(r[0]) for r in rows]

    async def outbox_backlog(self) -> tuple[int, float | None]:
        """Unpublished outbox rows and the time the oldest was written."""
        row = await self._first(
            f"SELECT COUNT(*), MIN(created_at) FROM {self.prefix}as_outbox "
            "WHERE published_at IS NULL",
            (),
        )
        if row is None:
            return 0, None
        return int(row[0]), None if row[1] is None else float(row[1])

    async def unpriced_calls(self) -> dict[tuple[str, str], int]:
        """Model calls journaled as unpriced (cost 0), per agent and model."""
        # the condition as written in the partial index (a bound pattern would not match it)
        where = UNPRICED_LLM.replace("%", self.percent)
        sql = f"SELECT agent, meta FROM {self.prefix}as_steps WHERE {where}"
        out: dict[tuple[str, str], int] = {}
        for agent, meta in await self.select(sql):
            model = str(json.loads(meta).get("model") or "?")
            out[(str(agent), model)] = out.get((str(agent), model), 0) + 1
        return out

    async def counts(self, agent: str | None = None) -> dict[str, int]:
        """Events per state, plus dead letters (all and open), parked and pending outbox.

        The state counts of an agent are an index-only scan of ``as_events_state`` (agent,
        state); on PostgreSQL one that reads the table's pages only where the visibility map
        is not set yet (the pages autovacuum has not reached).
        """
        cond, args = ("", ()) if agent is None else ("AND agent = ?", (agent,))
        p = self.prefix
        sql = (
            f"SELECT state, COUNT(*) FROM {p}as_events WHERE 1 = 1 {cond} GROUP BY state "
            f"UNION ALL SELECT 'dead_letters', COUNT(*) FROM {p}as_dead_letters "
            f"WHERE 1 = 1 {cond} "
            f"UNION ALL SELECT 'dead_letters_open', COUNT(*) FROM {p}as_dead_letters "
            f"WHERE status IN {BLOCKING} {cond} "
            f"UNION ALL SELECT 'parked', COUNT(*) FROM {p}as_parked WHERE 1 = 1 {cond} "
            f"UNION ALL SELECT 'outbox_pending', COUNT(*) FROM {p}as_outbox "
            f"WHERE published_at IS NULL {cond}"
        )
        out = {s.value: 0 for s in EventState}
        for name, n in await self.select(sql, args * 5):
            out[name] = int(n)
        return out

    async def shadow_runs(self, *, run_id: str | None = None, limit: int = 100) -> list[ShadowRun]:
        """Shadow runs, newest first."""
        where = Where().eq("run_id", run_id)
        rows = await self.select(
            "SELECT run_id, agent, candidate, created_at, finished_at, summary FROM "
            f"{self.prefix}as_shadow_runs {where.sql} ORDER BY created_at DESC LIMIT ?",
            (*where.args, limit),
        )
        return [ShadowRun(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    async def shadow_results(self, run_id: str) -> list[ShadowResult]:
        """A shadow run's per-event results in write order."""
        rows = await self.select(
            f"SELECT event_id, report FROM {self.prefix}as_shadow_results WHERE run_id = ? "
            "ORDER BY n",
            (run_id,),
        )
        return [ShadowResult(run_id, r[0], json.loads(r[1])) for r in rows]
