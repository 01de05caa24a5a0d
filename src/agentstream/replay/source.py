"""The journal reader that replaces the transport during replay.

Replay does not read a broker: the journal keeps each event's source message (key, value and
headers, byte for byte), so a recorded event is rebuilt exactly as the live worker saw it, with
its recorded identity and ordering key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from agentstream.agent import AgentSpec
from agentstream.event import Event, OutgoingRecord
from agentstream.journal.records import EventRecord, EventState, StepRecord
from agentstream.journal.store import Store
from agentstream.runtime.intake import interpret


@dataclass(frozen=True)
class Selection:
    """Which recorded events to replay (all filters combine).

    Attributes:
        event_ids: Only these identities.
        since: First seen at or after (wall-clock seconds).
        until: First seen before.
        partition: Only this source partition.
        offset_from: Source offset at or above (inclusive).
        offset_to: Source offset at or below (inclusive).
        key: Only this ordering key.
        limit: At most this many events (oldest first).
        page: Events whose steps and outputs are read from the journal per query.
        shard: ``(index, count)``: this process's share when several replay one selection;
            the selected events are dealt out round-robin, oldest first.
    """

    event_ids: Sequence[str] | None = None
    since: float | None = None
    until: float | None = None
    partition: int | None = None
    offset_from: int | None = None
    offset_to: int | None = None
    key: str | None = None
    limit: int | None = None
    page: int = 500
    shard: tuple[int, int] = (0, 1)


async def recorded_events(
    store: Store, spec: AgentSpec, selection: Selection
) -> AsyncIterator[EventRecord]:
    """Completed events of an agent matching the selection, oldest first."""
    records = await store.list_events(
        agent=spec.name,
        state=EventState.COMPLETED,
        key=selection.key,
        since=selection.since,
        until=selection.until,
        partition=selection.partition,
        offset_from=selection.offset_from,
        offset_to=selection.offset_to,
        event_ids=selection.event_ids,
        oldest_first=True,
        limit=selection.limit,
    )
    index, count = selection.shard
    for record in records[index::count]:
        yield record


@dataclass(frozen=True)
class RecordedPage:
    """Events of one page with their recorded steps and outbox records, read in two queries."""

    records: list[EventRecord]
    steps: dict[str, list[StepRecord]]
    outputs: dict[str, list[OutgoingRecord]]


async def recorded_pages(
    store: Store, spec: AgentSpec, records: Sequence[EventRecord], size: int
) -> AsyncIterator[RecordedPage]:
    """``records`` in pages of ``size``, the next page read while the caller works on one."""

    async def read(chunk: list[EventRecord]) -> RecordedPage:
        ids = [r.event_id for r in chunk]
        steps = await store.steps_of(spec.name, ids)
        outbox = await store.outbox_of(spec.name, ids)
        outputs = {e: [row.record for row in rows] for e, rows in outbox.items()}
        return RecordedPage(chunk, steps, outputs)

    size = max(1, size)
    chunks = [list(records[i : i + size]) for i in range(0, len(records), size)]
    pending = asyncio.ensure_future(read(chunks[0])) if chunks else None
    for n in range(len(chunks)):
        assert pending is not None
        page = await pending
        pending = asyncio.ensure_future(read(chunks[n + 1])) if n + 1 < len(chunks) else None
        try:
            yield page
        except BaseException:
            if pending is not None:
                pending.cancel()
            raise


def rebuild(spec: AgentSpec, record: EventRecord) -> Event | None:
    """The event the live worker saw, from its journal row (None if no message was kept)."""
    if record.message is None:
        return None
    event = interpret(spec, record.message)
    event.identity = record.event_id
    if record.key is not None:
        event.key = record.key
    return event
