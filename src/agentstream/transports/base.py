"""The Transport protocol: how events come in and records go out.

A transport speaks only agentstream types (:class:`~agentstream.event.Message`,
:class:`~agentstream.event.OutgoingRecord`, :class:`~agentstream.event.TopicPartition`); the
Kafka, SQS and embedded backends translate their client libraries at this edge.

The runtime drives a transport like this::

    await transport.start()
    await transport.subscribe(topics, group, listener)
    while running:
        messages = await transport.poll(max_records, timeout_s)   # never blocks the loop
        ...                                    # pause()/resume() for backpressure
        transport.ack(message)                                    # after the journal says done
        await transport.commit()                                  # periodically: flush acks
    await transport.close()

``ack`` only tells the transport that a message is durably done. A log transport commits per
partition the contiguous watermark (see :mod:`agentstream.transports.offsets`); a queue deletes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from agentstream.event import Message, OutgoingRecord, TopicPartition


class TransportFatalError(Exception):
    """The consumer cannot go on (a fatal client error): the worker stops instead of retrying.

    ``agentstream run`` then exits non-zero, so a supervisor restarts the process with a new
    client; everything not yet committed is redelivered and answered by the journal.
    """


class PartialPublishError(Exception):
    """``Transport.produce`` got some records acknowledged and not others.

    Attributes:
        acknowledged: Indexes (into the records passed to ``produce``) the broker acknowledged.
    """

    def __init__(self, message: str, acknowledged: frozenset[int] = frozenset()) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged


class RebalanceListener(Protocol):
    """Told when partitions arrive or leave, so the runtime can stop work on revoked ones."""

    async def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions now owned by this consumer."""
        ...

    async def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions about to be taken away; stop their work and release their claims."""
        ...


@runtime_checkable
class Transport(Protocol):
    """A source of messages and a sink for records (Kafka, SQS, the embedded log)."""

    async def start(self) -> None:
        """Connect (idempotent)."""
        ...

    async def subscribe(
        self, topics: Sequence[str], group: str, listener: RebalanceListener
    ) -> None:
        """Join ``group`` consuming ``topics``."""
        ...

    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        """Fetch up to ``max_records`` messages, waiting at most ``timeout_s`` for the first."""
        ...

    def pause(self) -> None:
        """Stop fetching from every assigned partition; polling continues (keeps membership)."""
        ...

    def resume(self) -> None:
        """Fetch again from every assigned partition."""
        ...

    def ack(self, message: Message) -> None:
        """Mark a delivered message durably done."""
        ...

    async def commit(self) -> None:
        """Flush acknowledgements to the broker."""
        ...

    async def produce(self, records: Sequence[OutgoingRecord]) -> None:
        """Publish records; return once the broker has them."""
        ...

    def assignment(self) -> list[TopicPartition]:
        """Partitions currently owned."""
        ...

    async def lag(self) -> dict[TopicPartition, int | None]:
        """Messages not yet committed per owned partition (None where unknown)."""
        ...

    async def close(self) -> None:
        """Commit what is done, leave the group, release in-flight messages, disconnect."""
        ...


@runtime_checkable
class DestinationChecker(Protocol):
    """A transport that can tell, before any record is sent, that a destination is missing."""

    async def check_destinations(self, topics: Sequence[str]) -> None:
        """Make sure each topic or queue exists (or can be created on first use).

        Raises:
            ConfigurationError: A destination is missing and will not be created.
        """
        ...


class IgnoreRebalance:
    """A listener for consumers with nothing to stop on a rebalance (tools, baselines)."""

    async def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Ignore newly assigned partitions."""

    async def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Ignore revoked partitions."""
