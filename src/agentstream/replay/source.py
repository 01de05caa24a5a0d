"""The journal reader that replaces the transport during replay.

Replay does not read a broker: the journal keeps each event's source message (key, value and
headers, byte for byte), so a recorded event is rebuilt exactly as the live worker saw it, with
its recorded identity and ordering key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from agentstream.agent import AgentSpec
from agentstream.event import Event
from agentstream.journal.records import EventRecord, EventState
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
        page: Events read from the journal per query.
    """

    event_ids: Sequence[str] | None = None
    since: float | None = None
    until: float | None = None
    partition: int | None = None
    offset_from: int | None = None
    offset_to: int | None = None
    key: str | None = None
    limit: int | None = None
    page: int = 5000


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
    for record in records:
        yield record


def rebuild(spec: AgentSpec, record: EventRecord) -> Event | None:
    """The event the live worker saw, from its journal row (None if no message was kept)."""
    if record.message is None:
        return None
    event = interpret(spec, record.message)
    event.identity = record.event_id
    if record.key is not None:
        event.key = record.key
    return event
