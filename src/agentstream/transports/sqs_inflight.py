"""Received SQS messages this consumer still holds, and what must happen to each.

A message is held from the moment ``ReceiveMessage`` returns it until it is deleted or its
visibility is released. While held, the transport's heartbeat keeps extending its visibility,
whatever its state:

* ``buffered``: received, not yet handed to the runtime by ``poll()``;
* ``delivered``: handed to the runtime, which is working on it;
* ``acked``: the journal recorded its completion; the next ``commit()`` deletes it.

On ``close()`` acked messages are deleted and all others released (visibility 0), so another
consumer gets them at once instead of after the visibility timeout.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

BATCH = 10
"""Entries per SQS batch call (the service's limit)."""


class HeldState(enum.StrEnum):
    """Where a held message is."""

    BUFFERED = "buffered"
    DELIVERED = "delivered"
    ACKED = "acked"


@dataclass(frozen=True, slots=True)
class SQSReceipt:
    """What ``Message.receipt`` holds for SQS: enough to delete or release the message.

    Attributes:
        queue_url: The queue's URL.
        handle: The receipt handle of this receive.
        seq: This consumer's receipt sequence number (also ``Message.offset``).
    """

    queue_url: str
    handle: str
    seq: int


@dataclass(slots=True)
class Held:
    """One held message."""

    receipt: SQSReceipt
    state: HeldState
    visibility_s: int


class HeldMessages:
    """The messages one consumer holds, by receipt sequence number."""

    def __init__(self) -> None:
        self._held: dict[int, Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    def add(self, receipt: SQSReceipt, visibility_s: int) -> None:
        """Hold a message just received."""
        self._held[receipt.seq] = Held(receipt, HeldState.BUFFERED, visibility_s)

    def delivered(self, seq: int) -> None:
        """The runtime got the message."""
        held = self._held.get(seq)
        if held is not None and held.state == HeldState.BUFFERED:
            held.state = HeldState.DELIVERED

    def acked(self, seq: int) -> bool:
        """The message is durably done; return whether it was still held."""
        held = self._held.get(seq)
        if held is None:
            return False
        held.state = HeldState.ACKED
        return True

    def forget(self, seqs: Iterable[int]) -> None:
        """Stop holding messages (deleted, released, or lost to a visibility lapse)."""
        for seq in seqs:
            self._held.pop(seq, None)

    def all(self) -> list[Held]:
        """Every held message."""
        return list(self._held.values())

    def in_state(self, *states: HeldState) -> list[Held]:
        """Held messages in any of ``states``."""
        return [h for h in self._held.values() if h.state in states]

    def count(self, state: HeldState) -> int:
        """How many held messages are in ``state``."""
        return sum(1 for h in self._held.values() if h.state == state)


def by_queue(held: Iterable[Held]) -> dict[str, list[Held]]:
    """Group held messages by queue URL, keeping their order."""
    out: dict[str, list[Held]] = {}
    for h in held:
        out.setdefault(h.receipt.queue_url, []).append(h)
    return out


def chunks(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
