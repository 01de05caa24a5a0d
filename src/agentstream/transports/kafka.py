"""The Kafka transport: consumer groups on confluent-kafka behind the Transport protocol.

Threads and the event loop:

* Every call on the consumer runs on one dedicated thread (a single-thread executor), so the
  event loop never blocks on librdkafka and consumer calls never race each other.
* ``poll()`` runs ``Consumer.poll`` / ``consume`` on that thread. librdkafka fires the rebalance
  callbacks (``on_assign``, ``on_revoke``, ``on_lost``) inside those calls, so they run on the
  consumer thread too; they hand the :class:`RebalanceListener` call to the event loop with
  ``run_coroutine_threadsafe`` and wait for it there, while the loop stays free to finish the
  revoked partitions' running events.
* ``pause()`` / ``resume()`` stop and restart delivery of every assigned partition (and of
  partitions assigned while paused). The runtime keeps calling ``poll()`` while paused, which
  keeps this member in its group: a handler that runs for ten minutes never exceeds
  ``max.poll.interval.ms``.

Pausing in two steps. librdkafka's own pause throws away the partition's prefetched messages,
and after a resume its broker thread fetches again only at its next wakeup, up to a second
later (measured on Tansu: 0.4 to 0.7 s with nothing to deliver). The runtime pauses whenever its
buffer is full, which on a fast agent is several times a second, so each of those gaps emptied
the buffer and left the worker idle (a no-op agent ran at a third of its journal's rate, the
process at half a core). So ``pause()`` first only stops handing messages out: ``poll()`` still
calls the consumer (rebalance callbacks run, the poll interval is met) and holds back, in
order, the few messages that returns; librdkafka keeps its prefetch, bounded as usual by
``queued.max.messages.kbytes``. Only a pause that lasts ``fetch_pause_after_s`` (or holds back
a full ``poll_batch``) becomes librdkafka's pause, which stops fetching. ``resume()`` hands the
held messages out first. Held messages of partitions that leave are dropped (never acknowledged,
so redelivered to the new owner).

Offsets: auto-commit and auto offset store are off. ``ack()`` marks an offset done in an
:class:`~agentstream.transports.offsets.OffsetTracker`; ``commit()`` commits, per partition,
only the contiguous watermark of acknowledged offsets. On revoke: stop taking messages of the
revoked partitions, let the listener stop their work (it releases journal claims), commit what
is done, then give them up. On a lost assignment (session timeout) nothing is committed: the
partitions already belong to someone else.

``lag()`` is best effort: the larger of the high watermark (from the last fetch response, else
asked from the broker) and one past the highest offset delivered, minus the committed offset.
Some brokers (Tansu) report a high watermark that is too low when one produce request carries
several records, so lag may read low there; it never reads high.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import Message as KafkaMessage
from confluent_kafka import TopicPartition as KafkaPartition

from agentstream.event import Message, OutgoingRecord, TopicPartition
from agentstream.transports.base import RebalanceListener, TransportFatalError
from agentstream.transports.kafka_config import KafkaSettings, parse_kafka_url
from agentstream.transports.kafka_produce import KafkaSender, Topics
from agentstream.transports.offsets import OffsetTracker

if TYPE_CHECKING:
    from agentstream.config import RuntimeConfig
    from agentstream.sqlite_db import SqliteFiles

log = logging.getLogger("agentstream.kafka")

T = TypeVar("T")

_HOLD_POLL_S = 0.05
"""Longest wait of one consumer poll while paused without stopping the fetcher."""

_LAG_QUERY_BUDGET_S = 3.0
"""Most time one lag() call spends asking the broker for watermarks (on the consumer thread)."""

_COMMIT_RETRY = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._NO_OFFSET,
    KafkaError._STATE,
}


class KafkaTransport:
    """A Kafka consumer-group member and idempotent producer.

    Args:
        settings: Parsed ``kafka://`` URL (hosts and librdkafka settings).
        partitions: Partitions of topics this transport creates, unless the URL says otherwise.
        listener_timeout_s: Longest wait for the rebalance listener (keep it well below
            ``max.poll.interval.ms``).
        fetch_pause_after_s: How long a pause only holds messages back before it stops
            librdkafka's fetcher (see the module notes; keep it well below
            ``max.poll.interval.ms``). Default: the URL's ``agentstream.fetch_pause_after_s``.

    Attributes:
        assignments: Rebalances that gave this member partitions.
        revocations: Rebalances that took partitions away (revoked or lost), not counting
            the final revoke of :meth:`close`.
    """

    messaging_system = "kafka"
    """``messaging.system`` of this transport's spans (OpenTelemetry messaging conventions)."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        partitions: int = 8,
        listener_timeout_s: float = 120.0,
        fetch_pause_after_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings, partitions)
        self.listener_timeout_s = listener_timeout_s
        self.fetch_pause_after_s = (
            settings.fetch_pause_after_s if fetch_pause_after_s is None else fetch_pause_after_s
        )
        self._sender = KafkaSender(settings)
        self._consumer: Consumer | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._listener: RebalanceListener | None = None
        self._group: str | None = None
        self._fatal: KafkaError | None = None
        # Guards _owned, _paused, _paused_at, _fetch_paused and _tracker across threads.
        self._lock = threading.Lock()
        self._owned: list[TopicPartition] = []
        self._paused = False
        self._paused_at = 0.0
        self._fetch_paused = False  # librdkafka's pause is applied (the fetcher stopped)
        self._held: list[KafkaMessage] = []  # taken while paused; consumer thread only
        self._tracker = OffsetTracker()
        self._cooperative = True
        self._closing = False
        self._probed = False
        self.assignments = 0
        self.revocations = 0

    def __repr__(self) -> str:
        return f"KafkaTransport({self.settings.bootstrap!r}, group={self._group!r})"

    async def start(self) -> None:
        """Check once that a broker answers (clients are created when first needed).

        Raises:
            KafkaUnreachable: No broker answered within ``agentstream.connect_timeout``.
        """
        if not self._probed:
            await self.topics.probe()
            self._probed = True

    async def create_topic(self, topic: str, partitions: int | None = None) -> int:
        """Create a topic if missing; return its partition count."""
        return await self.topics.create(topic, partitions)

    # -- consuming -------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def subscribe(
        self, topics: Sequence[str], group: str, listener: RebalanceListener
    ) -> None:
        """Join ``group`` on ``topics`` (created first when missing and allowed).

        Raises:
            KafkaTopicError: A topic is missing and ``agentstream.create_topics`` is false.
        """
        if self._consumer is not None:
            raise RuntimeError("this transport is already subscribed")
        await self.topics.ensure(topics)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._group, self._listener = group, listener
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="agentstream-kafka-consumer")
        config = self.settings.consumer_config(group)
        self._cooperative = "cooperative" in str(config["partition.assignment.strategy"])
        consumer = await self._run(Consumer, config)
        self._consumer = consumer
        await self._run(
            functools.partial(
                consumer.subscribe,
                list(topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
        )

    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        """Fetch up to ``max_records`` messages, waiting at most ``timeout_s`` for the first."""
        if self._consumer is None:
            await asyncio.sleep(timeout_s)
            return []
        return await self._run(self._poll_sync, max_records, timeout_s)

    def _poll_sync(self, max_records: int, timeout_s: float) -> list[Message]:
        consumer = self._consumer
        assert consumer is not None
        if self._fatal is not None:
            raise TransportFatalError(f"kafka consumer: fatal error: {self._fatal}")
        with self._lock:
            paused, holding = self._paused, self._paused and not self._fetch_paused
        if holding:
            self._hold(consumer, max_records, timeout_s)
            return []
        raw: list[KafkaMessage] = []
        if self._held and not paused:
            raw, self._held = self._held[:max_records], self._held[max_records:]
        if len(raw) < max_records:
            first = consumer.poll(0 if raw else timeout_s)
            if first is not None:
                raw.append(first)
                if len(raw) < max_records:
                    raw.extend(consumer.consume(max_records - len(raw), 0))
        return self._deliver(raw)

    def _hold(self, consumer: Consumer, max_records: int, timeout_s: float) -> None:
        """Paused, fetcher running: poll (callbacks, poll interval) but keep what comes back."""
        m = consumer.poll(min(timeout_s, _HOLD_POLL_S))
        if m is not None:
            self._held.append(m)
        with self._lock:
            if not self._paused or self._fetch_paused:
                return  # resumed meanwhile: the held messages go out with the next poll
            lasted = time.monotonic() - self._paused_at
            if lasted >= self.fetch_pause_after_s or len(self._held) >= max(max_records, 500):
                self._fetch_paused = True
                parts = _kafka_partitions(self._owned)
                if parts:
                    consumer.pause(parts)

    def _deliver(self, raw: list[KafkaMessage]) -> list[Message]:
        """Messages of owned partitions, each marked delivered in the offset tracker."""
        out: list[Message] = []
        with self._lock:
            owned = set(self._owned)
            for m in raw:
                err = m.error()
                if err is not None:
                    if err.fatal():
                        # Hand out what came before it (already marked delivered); the next
                        # poll raises.
                        self._fatal = err
                        break
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("kafka: consumer error: %s", err)
                    continue
                msg = to_message(m)
                if msg.tp not in owned:  # revoked by a rebalance inside this very call
                    continue
                if self._tracker.committed_offset(msg.tp) is None:
                    # The first record of a newly assigned partition sits at its committed
                    # position (or the reset position): start the watermark there.
                    self._tracker.assign(msg.tp, msg.offset)
                self._tracker.delivered(msg.tp, msg.offset)
                out.append(msg)
        return out

    def _notify(self, assigned: bool, parts: list[TopicPartition]) -> None:
        """Run the listener on the event loop and wait for it (called on the consumer thread)."""
        listener, loop = self._listener, self._loop
        if listener is None or loop is None or loop.is_closed() or not parts:
            return
        coro = listener.on_assigned(parts) if assigned else listener.on_revoked(parts)
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        if threading.get_ident() == self._loop_thread:
            # Waiting here would deadlock the loop; every consumer call runs on the consumer
            # thread, so this only happens if that rule is broken.
            log.error("kafka: rebalance callback on the event loop thread; not waiting for it")
            return
        try:
            future.result(self.listener_timeout_s)
        except Exception:
            future.cancel()  # a listener past its time must not keep working on given-up parts
            log.exception("rebalance listener failed for %s", ", ".join(map(str, parts)))

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        parts = [TopicPartition(p.topic, p.partition) for p in partitions]
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        with self._lock:
            if not self._cooperative:
                self._owned = []
            self._owned.extend(tp for tp in parts if tp not in self._owned)
            # Under the lock, so a resume() between reading the flag and pausing cannot leave
            # a new partition paused for good.
            if self._fetch_paused and partitions:
                consumer.pause(partitions)
        if parts:
            self.assignments += 1
            log.info("kafka: assigned %s", ", ".join(map(str, parts)))
        self._notify(True, parts)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        self._give_up(consumer, partitions, lost=False)

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        self._give_up(consumer, partitions, lost=True)

    def _give_up(self, consumer: Consumer, partitions: list[KafkaPartition], *, lost: bool) -> None:
        parts = [TopicPartition(p.topic, p.partition) for p in partitions]
        gone = set(parts)
        with self._lock:
            self._owned = [tp for tp in self._owned if tp not in gone]
        # Held back and never handed out: the partition's next owner gets them.
        self._held = [
            m for m in self._held if TopicPartition(m.topic() or "", m.partition() or 0) not in gone
        ]
        if parts and not self._closing:
            self.revocations += 1
            log.info("kafka: %s %s", "lost" if lost else "revoked", ", ".join(map(str, parts)))
        self._notify(False, parts)  # stops their work; finished events get acknowledged
        if not lost:
            try:
                self._commit_sync(parts)
            except KafkaException:
                log.warning("kafka: final commit of revoked partitions failed", exc_info=True)
        with self._lock:
            for tp in parts:
                self._tracker.forget(tp)
        if self._cooperative:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()

    def pause(self) -> None:
        """Stop handing out messages; ``poll()`` keeps the membership alive.

        The fetcher stops only if the pause lasts (see the module notes).
        """
        with self._lock:  # pause/resume are local to librdkafka: quick, never blocking
            if not self._paused:
                self._paused, self._paused_at = True, time.monotonic()

    def resume(self) -> None:
        """Hand out messages again (held ones first), fetching from every assigned partition."""
        with self._lock:
            self._paused = False
            if self._fetch_paused:
                self._fetch_paused = False
                parts = _kafka_partitions(self._owned)
                if self._consumer is not None and parts:
                    self._consumer.resume(parts)

    @property
    def paused(self) -> bool:
        """Whether delivery is paused."""
        return self._paused

    @property
    def fetch_stopped(self) -> bool:
        """Whether the pause has lasted long enough to stop librdkafka's fetcher too."""
        return self._fetch_paused

    def ack(self, message: Message) -> None:
        """Mark a delivered message durably done (committed with the next watermark)."""
        with self._lock:
            self._tracker.acked(message.tp, message.offset)

    async def commit(self) -> None:
        """Commit each owned partition's contiguous watermark of acknowledged offsets."""
        if self._consumer is not None:
            await self._run(self._commit_sync, None)

    def _commit_sync(self, parts: list[TopicPartition] | None) -> None:
        consumer = self._consumer
        assert consumer is not None
        with self._lock:
            offsets = self._tracker.to_commit(parts)
        if not offsets:
            return
        try:
            wanted = [KafkaPartition(tp.topic, tp.partition, off) for tp, off in offsets.items()]
            result = consumer.commit(offsets=wanted, asynchronous=False)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() in _COMMIT_RETRY or err.retriable():
                log.warning("kafka: commit deferred (%s); retrying with the next commit", err)
                return
            raise
        done = {
            tp: off
            for tp, off in offsets.items()
            if not any(
                r.topic == tp.topic and r.partition == tp.partition and r.error is not None
                for r in result or []
            )
        }
        with self._lock:
            self._tracker.committed(done)

    def assignment(self) -> list[TopicPartition]:
        """Partitions this member owns."""
        with self._lock:
            return list(self._owned)

    async def lag(self) -> dict[TopicPartition, int | None]:
        """Best-effort records not yet committed per owned partition (see the module notes)."""
        if self._consumer is None:
            return {}
        return await self._run(self._lag_sync)

    def _lag_sync(self) -> dict[TopicPartition, int | None]:
        consumer = self._consumer
        assert consumer is not None
        with self._lock:
            owned = list(self._owned)
            known = {
                tp: (self._tracker.committed_offset(tp), self._tracker.position(tp))
                for tp in owned
                if self._tracker.committed_offset(tp) is not None
            }
        unstarted = [KafkaPartition(tp.topic, tp.partition) for tp in owned if tp not in known]
        broker_committed: dict[TopicPartition, int] = {}
        if unstarted:
            try:
                for p in consumer.committed(unstarted, timeout=5):
                    if p.offset >= 0:
                        broker_committed[TopicPartition(p.topic, p.partition)] = p.offset
            except KafkaException:
                log.debug("kafka: committed offsets unavailable", exc_info=True)
        out: dict[TopicPartition, int | None] = {}
        # This runs on the consumer thread: bound the broker queries so that an outage with
        # many partitions cannot hold up polling for long (the rest read from the cache).
        budget_ends = time.monotonic() + _LAG_QUERY_BUDGET_S
        for tp in owned:
            kp = KafkaPartition(tp.topic, tp.partition)
            # The watermarks of the last fetch response cost nothing; ask the broker only for
            # partitions not fetched yet (paused or just assigned).
            low, high = _watermarks(consumer, kp, cached=True)
            if high < 0 and time.monotonic() < budget_ends:
                low, high = _watermarks(consumer, kp, cached=False)
            committed, delivered_end = known.get(tp, (None, -1))
            if committed is None:
                committed = broker_committed.get(tp, max(low, 0))
            end = max(high, delivered_end)
            out[tp] = None if end < 0 else max(0, end - committed)
        return out

    async def group_offsets(
        self, group: str, topics: Sequence[str]
    ) -> dict[TopicPartition, tuple[int | None, int | None]]:
        """Committed offset and high watermark of each partition of ``topics`` for ``group``.

        The high watermark is the broker's (too low on Tansu after multi-record produce
        requests; see the module notes).
        """
        return await asyncio.to_thread(self._group_offsets_sync, group, list(topics))

    def _group_offsets_sync(
        self, group: str, topics: list[str]
    ) -> dict[TopicPartition, tuple[int | None, int | None]]:
        inspector = Consumer(self.settings.consumer_config(group))  # never subscribes
        out: dict[TopicPartition, tuple[int | None, int | None]] = {}
        try:
            metadata = inspector.list_topics(timeout=10)
            wanted = [
                KafkaPartition(topic, p)
                for topic in topics
                if topic in metadata.topics
                for p in sorted(metadata.topics[topic].partitions)
            ]
            if not wanted:
                return out
            for p in inspector.committed(wanted, timeout=10):
                _, high = _watermarks(inspector, p, cached=False)
                out[TopicPartition(p.topic, p.partition)] = (
                    p.offset if p.offset >= 0 else None,
                    high if high >= 0 else None,
                )
        finally:
            inspector.close()
        return out

    # -- producing -------------------------------------------------------------------------

    async def produce(self, records: Sequence[OutgoingRecord]) -> None:
        """Publish records; return once the broker acknowledged every one.

        Missing topics are created first (unless ``agentstream.create_topics=false``, in which
        case a missing topic fails clearly).

        Raises:
            KafkaTopicError: A topic is missing and may not be created.
            KafkaDeliveryError: The broker did not acknowledge a record.
        """
        if not records:
            return
        await self.topics.ensure({r.topic for r in records})
        await self._sender.send(records)

    async def check_destinations(self, topics: Sequence[str]) -> None:
        """Make sure every topic exists, creating it unless ``agentstream.create_topics=false``.

        Raises:
            KafkaTopicError: A topic is missing and may not be created.
        """
        await self.topics.ensure(topics)

    async def close(self) -> None:
        """Commit what is done, leave the group (revoking through the listener), flush."""
        consumer, executor = self._consumer, self._executor
        self._closing = True
        try:
            if consumer is not None and executor is not None:
                try:
                    await self._run(self._commit_sync, None)
                finally:
                    await self._run(consumer.close)
        finally:
            self._consumer = None
            if executor is not None:
                executor.shutdown(wait=False)
                self._executor = None
            with self._lock:
                self._owned = []
            self.topics.close()
            await self._sender.close()


def _kafka_partitions(parts: Sequence[TopicPartition]) -> list[KafkaPartition]:
    return [KafkaPartition(tp.topic, tp.partition) for tp in parts]


def _watermarks(consumer: Consumer, part: KafkaPartition, *, cached: bool) -> tuple[int, int]:
    try:
        low, high = consumer.get_watermark_offsets(part, timeout=2, cached=cached)
    except KafkaException:
        return -1, -1
    return int(low), int(high)


def to_message(m: KafkaMessage) -> Message:
    """A confluent-kafka record as an agentstream :class:`Message`."""
    kind, ts = m.timestamp()
    raw_headers = m.headers() or []
    topic, partition, offset = m.topic(), m.partition(), m.offset()
    assert topic is not None and partition is not None and offset is not None
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=m.key(),
        value=m.value(),  # None for a tombstone, b"" for an empty value
        headers=_headers(raw_headers),
        timestamp_ms=ts if kind else 0,
    )


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    """confluent-kafka's header list as agentstream headers (a missing value becomes b"")."""
    out: list[tuple[str, bytes]] = []
    for name, value in raw:
        if isinstance(value, str):
            out.append((str(name), value.encode()))
        else:
            out.append((str(name), b"" if value is None else bytes(value)))
    return tuple(out)


def from_url(url: str, config: RuntimeConfig, backends: SqliteFiles) -> KafkaTransport:
    """A Kafka transport for a ``kafka://`` URL (see :mod:`agentstream.transports.kafka_config`)."""
    del backends
    return KafkaTransport(parse_kafka_url(url), partitions=config.partitions)


__all__ = ["KafkaSettings", "KafkaTransport", "from_url", "parse_kafka_url"]
