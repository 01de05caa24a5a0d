"""The SQS transport: standard and FIFO queues behind the Transport protocol.

How queue semantics map onto the protocol:

* A queue is a topic with one virtual partition: ``Message.partition`` is 0 and
  ``assignment()`` is ``[TopicPartition(queue, 0)]``. ``Message.offset`` is this consumer's
  receipt sequence number, so it is not stable across redeliveries: identity comes from a
  header (message attribute), a payload function, the FIFO ``MessageDeduplicationId``, else the
  ``MessageId`` (see :func:`agentstream.event.fallback_identity`).
* A group is just competing consumers: every consumer of a queue may receive any message.
* Receiving is a background long poll per queue (``ReceiveMessage``, up to ten at a time) into a
  small prefetch buffer that ``poll()`` reads; ``pause()`` stops receiving, ``resume()`` starts
  it again.
* A **heartbeat** renews the visibility (``ChangeMessageVisibilityBatch``) of every message this
  consumer holds, received, being worked on, or done but not yet deleted, so a ten-minute model
  call never lets the message reappear to another consumer. It runs during ``pause()`` too.
* ``ack()`` only queues the message for deletion; it is called by the runtime after the journal
  recorded the event's completion or dead letter. ``commit()`` deletes the queued messages
  (``DeleteMessageBatch``); a delete that fails stays queued for the next commit, except for a
  receipt handle SQS no longer accepts (the message came back): its redelivery is a duplicate
  the journal recognises.
* ``close()`` stops receiving, stops the heartbeat, deletes what is done and releases everything
  else (visibility 0), so other consumers get it at once.
* ``Message.delivery_count`` is ``ApproximateReceiveCount`` and ``Message.max_deliveries`` the
  redrive policy's ``maxReceiveCount``: the runtime dead-letters on the last receive SQS allows,
  so SQS's own redrive never takes an event whose outcome the journal does not record.
* On FIFO queues ``Message.key`` is the ``MessageGroupId`` (see
  :mod:`agentstream.transports.sqs_codec`), so ordering follows the groups.
* ``lag()`` is ``ApproximateNumberOfMessages`` + ``...NotVisible`` + ``...Delayed``: every
  message not yet deleted (approximate on SQS, exact on moto).
* ``produce()`` sends to queues (``SendMessageBatch``; FIFO group id from the key, deduplication
  id from ``OutgoingRecord.dedupe_id``) and to SNS topics named ``sns:NAME`` or by ARN
  (``PublishBatch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from agentstream.event import Message, OutgoingRecord, TopicPartition
from agentstream.failures import ConfigurationError
from agentstream.transports.base import PartialPublishError, RebalanceListener
from agentstream.transports.sqs_client import (
    AwsClients,
    QueueInfo,
    is_sns_destination,
    translate_error,
)
from agentstream.transports.sqs_codec import decode_message
from agentstream.transports.sqs_config import SQSSettings, parse_sqs_url
from agentstream.transports.sqs_inflight import (
    Held,
    HeldMessages,
    HeldState,
    SQSReceipt,
    by_queue,
    chunks,
)
from agentstream.transports.sqs_produce import publish_to_topic, send_to_queue

if TYPE_CHECKING:
    from types_aiobotocore_sqs.type_defs import (
        MessageTypeDef,
    )

    from agentstream.config import RuntimeConfig
    from agentstream.sqlite_db import SqliteFiles

log = logging.getLogger("agentstream.sqs")

_GONE = {
    "ReceiptHandleIsInvalid",
    "InvalidReceiptHandle",
    "AWS.SimpleQueueService.MessageNotInflight",
    "MessageNotInflight",
}
"""Batch entry errors meaning the receipt no longer refers to a message this consumer holds."""

_SNS_MAX_SIZE = 262_144
_PARALLEL_CALLS = 8


class SQSTransport:
    """Consumes and produces SQS queues (and publishes to SNS topics).

    Args:
        settings: Connection and pacing settings (see :mod:`agentstream.transports.sqs_config`).
    """

    messaging_system = "aws_sqs"
    """``messaging.system`` of this transport's spans (OpenTelemetry messaging conventions)."""

    def __init__(self, settings: SQSSettings) -> None:
        self.settings = settings
        self.clients = AwsClients(settings)
        self._started = False
        self._closing = False
        self._paused = False
        self._queues: dict[str, QueueInfo] = {}
        self._buffer: deque[Message] = deque()
        self._buffered: dict[str, int] = {}
        self._held = HeldMessages()
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._arrived = asyncio.Event()
        self._receivers: list[asyncio.Task[None]] = []
        self._heartbeat: asyncio.Task[None] | None = None
        self._commit_lock = asyncio.Lock()
        self._calls = asyncio.Semaphore(_PARALLEL_CALLS)
        self.received = 0
        self.deleted = 0
        self.extended = 0
        self.released = 0
        self.lost = 0

    def __repr__(self) -> str:
        s = self.settings
        return f"SQSTransport(endpoint={s.endpoint_url!r}, region={s.region!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the SQS client (idempotent)."""
        if self._started:
            return
        await self.clients.open()
        self._started = True
        self._closing = False

    async def subscribe(
        self, topics: Sequence[str], group: str, listener: RebalanceListener
    ) -> None:
        """Start receiving from ``topics`` (queue names or URLs) as a competing consumer.

        ``group`` has no meaning on SQS beyond naming the consumer in logs: every consumer of a
        queue competes for its messages.
        """
        await self.start()
        for topic in topics:
            if topic in self._queues:
                continue
            info = await self.clients.queue(topic)
            visibility = self._visibility(info)
            if visibility < 1 or self.settings.heartbeat_for(visibility) >= visibility:
                raise ConfigurationError(
                    f"queue {info.name}: a visibility timeout of {visibility}s leaves no time to "
                    "renew it; set visibility_timeout= (and heartbeat= below it) in the sqs URL"
                )
            self._queues[topic] = info
            self._buffered[topic] = 0
            if info.max_receive_count == 1:
                log.warning(
                    "queue %s: maxReceiveCount is 1, so a crashed event goes to the queue's own "
                    "dead-letter queue without an agentstream dead-letter record; use at least 2",
                    info.name,
                )
            self._receivers.append(
                asyncio.create_task(self._receive_loop(topic, info), name=f"sqs-receive:{topic}")
            )
        if self._heartbeat is None and self._queues:
            period = min(
                self.settings.heartbeat_for(self._visibility(q)) for q in self._queues.values()
            )
            self._heartbeat = asyncio.create_task(
                self._heartbeat_loop(period), name="sqs-heartbeat"
            )
        log.info("consumer of group %s subscribed to %s", group, ", ".join(topics))
        await listener.on_assigned([TopicPartition(t, 0) for t in topics])

    async def close(self) -> None:
        """Stop receiving and the heartbeat, delete what is done, release the rest, disconnect."""
        if not self._started:
            return
        self._closing = True
        self._wakeup.set()
        self._arrived.set()
        try:
            if self._receivers:
                # Let a long poll in flight finish: its messages are released below, where a
                # cancelled request could leave them invisible for a whole visibility timeout.
                _, pending = await asyncio.wait(
                    self._receivers, timeout=self.settings.wait_time_s + 10
                )
                for task in pending:
                    task.cancel()
                await asyncio.gather(*self._receivers, return_exceptions=True)
            if self._heartbeat is not None:
                self._heartbeat.cancel()
                await asyncio.gather(self._heartbeat, return_exceptions=True)
            await self.commit()
            await self._release(self._held.in_state(HeldState.BUFFERED, HeldState.DELIVERED))
        finally:
            self._receivers.clear()
            self._heartbeat = None
            self._queues.clear()
            self._buffer.clear()
            self._held = HeldMessages()
            self._started = False
            await self.clients.close()

    # -- consuming -------------------------------------------------------------------------

    def _visibility(self, info: QueueInfo) -> int:
        return self.settings.visibility_timeout_s or info.visibility_timeout_s

    async def _receive_loop(self, topic: str, info: QueueInfo) -> None:
        visibility = self._visibility(info)
        backoff = 0.5
        while not self._closing:
            room = self.settings.prefetch - self._buffered[topic]
            if self._paused or room <= 0:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                response = await self.clients.sqs.receive_message(
                    QueueUrl=info.url,
                    MaxNumberOfMessages=min(10, room),
                    WaitTimeSeconds=self.settings.wait_time_s,
                    VisibilityTimeout=visibility,
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=["All"],
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = translate_error(exc, f"receive from {topic!r}")
                log.warning("%s; retrying in %.1fs", error, backoff)
                await self._sleep_unless_closing(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            raw_messages = response.get("Messages", [])
            for raw in raw_messages:
                message = self._to_message(topic, info, raw)
                self._held.add(message.receipt, visibility)
                self.received += 1
                if not self._closing:
                    self._buffer.append(message)
                    self._buffered[topic] += 1
            if raw_messages:
                self._arrived.set()
            elif self.settings.wait_time_s == 0:
                await self._sleep_unless_closing(0.2)

    async def _sleep_unless_closing(self, seconds: float) -> None:
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    def _to_message(self, topic: str, info: QueueInfo, raw: MessageTypeDef) -> Message:
        attrs = {str(k): v for k, v in raw.get("Attributes", {}).items()}
        group = attrs.get("MessageGroupId")
        decoded = decode_message(raw.get("Body", ""), dict(raw.get("MessageAttributes", {})), group)
        seq = next(self._seq)
        count = attrs.get("ApproximateReceiveCount")
        return Message(
            topic=topic,
            partition=0,
            offset=seq,
            key=decoded.key,
            value=decoded.value,
            headers=decoded.headers,
            timestamp_ms=int(attrs.get("SentTimestamp", "0")),
            receipt=SQSReceipt(info.url, raw.get("ReceiptHandle", ""), seq),
            delivery_count=None if count is None else int(count),
            max_deliveries=info.max_receive_count,
            dedupe_id=attrs.get("MessageDeduplicationId") or None,
            message_id=raw.get("MessageId") or None,
        )

    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        """Hand over up to ``max_records`` received messages, waiting at most ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self._buffer and not self._paused:
                out: list[Message] = []
                while self._buffer and len(out) < max_records:
                    message = self._buffer.popleft()
                    self._buffered[message.topic] -= 1
                    self._held.delivered(message.offset)
                    out.append(message)
                self._wakeup.set()
                return out
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                return []
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def pause(self) -> None:
        """Stop receiving; held messages keep their visibility renewed."""
        self._paused = True

    def resume(self) -> None:
        """Receive again."""
        self._paused = False
        self._wakeup.set()
        self._arrived.set()

    @property
    def paused(self) -> bool:
        """Whether receiving is paused."""
        return self._paused

    def ack(self, message: Message) -> None:
        """Queue a message for deletion by the next :meth:`commit`."""
        if isinstance(message.receipt, SQSReceipt):
            self._held.acked(message.receipt.seq)

    async def commit(self) -> None:
        """Delete every acknowledged message (``DeleteMessageBatch``)."""
        async with self._commit_lock:
            done = self._held.in_state(HeldState.ACKED)
            if not done or not self._started:
                return
            await self._batched(done, self._delete_batch)

    async def _delete_batch(self, url: str, batch: Sequence[Held]) -> None:
        try:
            response = await self.clients.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(h.receipt.seq), "ReceiptHandle": h.receipt.handle} for h in batch
                ],
            )
        except Exception as exc:
            log.warning(
                "%s; the deletes are retried at the next commit", translate_error(exc, "delete")
            )
            return
        deleted = [int(e["Id"]) for e in response.get("Successful", [])]
        self.deleted += len(deleted)
        gone = [int(e["Id"]) for e in response.get("Failed", []) if e.get("Code") in _GONE]
        if gone:
            log.info(
                "%d acknowledged message(s) came back before their delete; their redelivery "
                "is recognised as a duplicate",
                len(gone),
            )
        self._held.forget([*deleted, *gone])

    async def _batched(
        self, held: Sequence[Held], call: Callable[[str, Sequence[Held]], Awaitable[None]]
    ) -> None:
        async def limited(url: str, batch: Sequence[Held]) -> None:
            async with self._calls:
                await call(url, batch)

        await asyncio.gather(
            *(
                limited(url, batch)
                for url, items in by_queue(held).items()
                for batch in chunks(items)
            )
        )

    # -- visibility ------------------------------------------------------------------------

    async def _heartbeat_loop(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await self._batched(self._held.all(), self._extend_batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("visibility heartbeat failed; retrying next period")

    async def _extend_batch(self, url: str, batch: Sequence[Held]) -> None:
        await self._change_visibility(url, batch, None)

    async def _release(self, held: Sequence[Held]) -> None:
        if held:
            await self._batched(held, self._release_batch)

    async def _release_batch(self, url: str, batch: Sequence[Held]) -> None:
        await self._change_visibility(url, batch, 0)
        self._held.forget(h.receipt.seq for h in batch)

    async def _change_visibility(
        self, url: str, batch: Sequence[Held], visibility: int | None
    ) -> None:
        try:
            response = await self.clients.sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {
                        "Id": str(h.receipt.seq),
                        "ReceiptHandle": h.receipt.handle,
                        "VisibilityTimeout": h.visibility_s if visibility is None else visibility,
                    }
                    for h in batch
                ],
            )
        except Exception as exc:
            log.warning("%s", translate_error(exc, "change visibility"))
            return
        ok = len(response.get("Successful", []))
        if visibility is None:
            self.extended += ok
        else:
            self.released += ok
        failed = response.get("Failed", [])
        gone = {int(e["Id"]) for e in failed if e.get("Code") in _GONE}
        if gone and visibility is None:
            # An acknowledged message may just have been deleted by a commit running alongside;
            # any other one was lost to a visibility lapse and may be redelivered elsewhere.
            lost = [h for h in batch if h.receipt.seq in gone and h.state != HeldState.ACKED]
            if lost:
                self.lost += len(lost)
                log.warning(
                    "%d held message(s) could not be extended (visible again after a lapse); "
                    "if redelivered, the journal recognises them",
                    len(lost),
                )
            self._held.forget(gone)
        for entry in failed:
            if entry.get("Code") not in _GONE:
                log.warning(
                    "visibility change failed: %s %s", entry.get("Code"), entry.get("Message")
                )

    # -- producing -------------------------------------------------------------------------

    async def produce(self, records: Sequence[OutgoingRecord]) -> None:
        """Send records to their queues or SNS topics, in order per destination.

        Raises:
            ConfigurationError: A destination does not exist (and creation is off).
            TransientError: SQS or SNS did not accept every record.
            OversizedPayload: A record's value is larger than its destination accepts.
            PartialPublishError: Some destinations took their records and others did not.
        """
        await self.start()
        by_destination: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            by_destination.setdefault(record.topic, []).append(i)
        acknowledged: set[int] = set()
        failures: list[Exception] = []
        for destination, indexes in by_destination.items():
            recs = [records[i] for i in indexes]
            try:
                if is_sns_destination(destination):
                    await publish_to_topic(self.clients, destination, recs)
                else:
                    await send_to_queue(self.clients, destination, recs)
            except Exception as exc:
                failures.append(exc)  # other destinations still get their records
                continue
            acknowledged.update(indexes)
        if failures and not acknowledged and len(failures) == 1:
            raise failures[0]
        if failures:
            raise PartialPublishError(
                f"{len(records) - len(acknowledged)} of {len(records)} record(s) not sent: "
                f"{failures[0]}",
                frozenset(acknowledged),
            ) from failures[0]

    async def check_destinations(self, topics: Sequence[str]) -> None:
        """Look up every destination queue (SNS topics are checked on first publish).

        Raises:
            ConfigurationError: A queue does not exist and creation is off.
        """
        await self.start()
        for topic in topics:
            if not is_sns_destination(topic):
                await self.clients.queue(topic)

    # -- inspection ------------------------------------------------------------------------

    def assignment(self) -> list[TopicPartition]:
        """The subscribed queues, each as its single virtual partition."""
        return [TopicPartition(t, 0) for t in self._queues]

    async def lag(self) -> dict[TopicPartition, int | None]:
        """Messages not yet deleted per subscribed queue (visible, in flight and delayed)."""
        out: dict[TopicPartition, int | None] = {}
        for topic, info in self._queues.items():
            out[TopicPartition(topic, 0)] = await self.depth(info.url)
        return out

    async def depth(self, queue: str) -> int | None:
        """Approximate messages not yet deleted in a queue (name or URL); None if unknown."""
        try:
            url = (
                queue
                if queue.startswith(("http://", "https://"))
                else (await self.clients.queue(queue)).url
            )
            attrs = (
                await self.clients.sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed",
                    ],
                )
            )["Attributes"]
        except Exception as exc:
            log.warning("%s", translate_error(exc, f"read the depth of {queue!r}"))
            return None
        return sum(
            int(attrs.get(name, "0"))
            for name in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )

    async def create_queue(self, name: str, attributes: dict[str, str] | None = None) -> str:
        """Create a queue (FIFO when the name ends in ``.fifo``); return its URL.

        Args:
            name: Queue name.
            attributes: SQS queue attributes (``VisibilityTimeout``, ``RedrivePolicy``, ...).
        """
        await self.start()
        return await self.clients.create_queue(name, attributes)

    def held(self) -> dict[str, int]:
        """How many messages this consumer holds, per state (for tests and metrics)."""
        return {str(s): self._held.count(s) for s in HeldState}


def from_url(url: str, config: RuntimeConfig, backends: SqliteFiles) -> SQSTransport:
    """An SQS transport for an ``sqs://`` URL (see :mod:`agentstream.transports.sqs_config`)."""
    del config, backends
    return SQSTransport(parse_sqs_url(url))


__all__ = ["SQSReceipt", "SQSSettings", "SQSTransport", "from_url"]
