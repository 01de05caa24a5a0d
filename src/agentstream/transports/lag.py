"""Consumer-group inspection for ``agentstream status`` and lag metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from agentstream.event import TopicPartition


@runtime_checkable
class GroupInspector(Protocol):
    """A transport that can report a group's committed offsets and the log ends."""

    async def group_offsets(
        self, group: str, topics: Sequence[str]
    ) -> dict[TopicPartition, tuple[int | None, int | None]]:
        """``(committed, end)`` per partition of ``topics`` for ``group`` (None if unknown)."""
        ...
