"""Contiguous-watermark offset tracking for log transports.

The commit order, which every log transport follows:

1. The journal records an event's completion (or dead letter) together with its outbox rows in
   one transaction; only then does the runtime call ``Transport.ack(message)``.
2. ``ack`` marks the message's offset done in this tracker; nothing is written yet.
3. ``Transport.commit()`` asks each partition for its watermark, the lowest offset delivered
   and not yet acknowledged (or one past the highest delivered when all are done), and commits
   it if it moved forward. An offset can only move forward: a smaller one raises.
4. On revoke, steps 3 runs for the revoked partitions before they are given up.

So no committed offset ever passes an event whose completion is not durable, and a crash at any
point redelivers only events whose completion the journal will recognise.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from agentstream.event import TopicPartition


class OffsetRegressionError(RuntimeError):
    """A commit tried to move a partition's offset backwards."""


@dataclass(slots=True)
class PartitionOffsets:
    """Delivered and acknowledged offsets of one partition.

    Attributes:
        committed: The last committed position (next offset to read after a restart).
        next_offset: One past the highest offset delivered.
    """

    committed: int
    next_offset: int
    _pending: list[int] = field(default_factory=list)
    _outstanding: set[int] = field(default_factory=set)
    _acked: set[int] = field(default_factory=set)

    def delivered(self, offset: int) -> None:
        """Register a delivered offset."""
        if offset in self._outstanding or offset < self.committed:
            return
        heapq.heappush(self._pending, offset)
        self._outstanding.add(offset)
        self.next_offset = max(self.next_offset, offset + 1)

    def acked(self, offset: int) -> None:
        """Mark an offset done (unknown or repeated acknowledgements are ignored)."""
        if offset in self._outstanding:
            self._outstanding.discard(offset)
            self._acked.add(offset)

    def watermark(self) -> int:
        """Lowest delivered offset not yet done, else one past the highest delivered."""
        while self._pending and self._pending[0] in self._acked:
            self._acked.discard(heapq.heappop(self._pending))
        if self._pending:
            return self._pending[0]
        return self.next_offset

    @property
    def in_flight(self) -> int:
        """Delivered offsets not yet acknowledged."""
        return len(self._outstanding)


class OffsetTracker:
    """Per-partition watermarks for one consumer."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, PartitionOffsets] = {}

    def assign(self, tp: TopicPartition, committed: int) -> None:
        """Start tracking a partition from its committed position."""
        self._parts[tp] = PartitionOffsets(committed=committed, next_offset=committed)

    def forget(self, tp: TopicPartition) -> None:
        """Stop tracking a partition (after its final commit on revoke)."""
        self._parts.pop(tp, None)

    def delivered(self, tp: TopicPartition, offset: int) -> None:
        """Register a delivered message."""
        part = self._parts.get(tp)
        if part is not None:
            part.delivered(offset)

    def acked(self, tp: TopicPartition, offset: int) -> None:
        """Mark a message done (ignored for partitions no longer owned)."""
        part = self._parts.get(tp)
        if part is not None:
            part.acked(offset)

    def position(self, tp: TopicPartition) -> int:
        """Next offset to fetch."""
        return self._parts[tp].next_offset

    def to_commit(
        self, partitions: list[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Watermarks that moved past the last commit."""
        out: dict[TopicPartition, int] = {}
        for tp in partitions if partitions is not None else list(self._parts):
            part = self._parts.get(tp)
            if part is None:
                continue
            mark = part.watermark()
            if mark < part.committed:
                raise OffsetRegressionError(f"{tp}: watermark {mark} < committed {part.committed}")
            if mark > part.committed:
                out[tp] = mark
        return out

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Record that ``offsets`` were committed."""
        for tp, offset in offsets.items():
            part = self._parts.get(tp)
            if part is None:
                continue
            if offset < part.committed:
                raise OffsetRegressionError(f"{tp}: commit {offset} < committed {part.committed}")
            part.committed = offset

    def partitions(self) -> list[TopicPartition]:
        """Tracked partitions."""
        return list(self._parts)

    def in_flight(self) -> int:
        """Delivered messages not yet acknowledged, all partitions."""
        return sum(p.in_flight for p in self._parts.values())

    def committed_offset(self, tp: TopicPartition) -> int | None:
        """Last committed offset of a tracked partition."""
        part = self._parts.get(tp)
        return None if part is None else part.committed
