"""Producing to Kafka: the idempotent producer with awaited delivery reports, and topic creation.

``produce()`` returns only once the broker acknowledged every record (``acks=all``, idempotent),
so the outbox marks published exactly what the broker has. Delivery reports are served by a
small thread that calls ``Producer.poll``; each report resolves an asyncio future through
``call_soon_threadsafe``, so the event loop never blocks on librdkafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka import Message as KafkaMessage
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from agentstream.event import OutgoingRecord
from agentstream.failures import ConfigurationError
from agentstream.outputs import OUTPUT_ID_HEADER
from agentstream.transports.base import PartialPublishError
from agentstream.transports.kafka_config import KafkaSettings

log = logging.getLogger("agentstream.kafka")


class KafkaDeliveryError(PartialPublishError):
    """The broker did not acknowledge some records (``acknowledged`` tells which it did).

    ``fatal`` is true when the error leaves the producer unusable: librdkafka reported it
    fatal, or the broker fenced the producer's id or epoch (see :data:`POISONING_ERRORS`).
    """

    fatal = False


POISONING_ERRORS = frozenset(
    {
        KafkaError._FATAL,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.INVALID_PRODUCER_ID_MAPPING,
    }
)
"""Errors after which an idempotent producer never succeeds again (seen after a broker stall:
``PRODUCER_FENCED`` on every record, forever); the producer is replaced by a new one, which
gets a new producer id from the broker."""


def poisons_producer(err: KafkaError) -> bool:
    """Whether an error leaves the producer unusable until it is replaced."""
    return bool(err.fatal()) or err.code() in POISONING_ERRORS


class KafkaTopicError(ConfigurationError):
    """A topic could not be found or created (the CLI reports it and exits)."""


class KafkaUnreachable(ConfigurationError):
    """No broker answered at start within ``agentstream.connect_timeout`` (the CLI exits)."""


def record_headers(rec: OutgoingRecord) -> list[tuple[str, str | bytes | None]]:
    """The record's headers, plus the output-id header when it has a dedupe id and no such header.

    Kafka cannot deduplicate by id itself, so the id travels where consumers can read it.
    """
    headers: list[tuple[str, str | bytes | None]] = list(rec.headers)
    if rec.dedupe_id is not None and all(k != OUTPUT_ID_HEADER for k, _ in headers):
        headers.append((OUTPUT_ID_HEADER, rec.dedupe_id.encode()))
    return headers


class Topics:
    """Knows which topics exist and creates missing ones through the admin client.

    Args:
        settings: The parsed URL.
        default_partitions: Partitions of created topics unless the URL sets them.
    """

    def __init__(self, settings: KafkaSettings, default_partitions: int) -> None:
        self.settings = settings
        self.default_partitions = settings.partitions or default_partitions
        self._admin: AdminClient | None = None
        self._known: set[str] = set()

    def admin(self) -> AdminClient:
        """The admin client (created on first use)."""
        if self._admin is None:
            self._admin = AdminClient(self.settings.admin_config())
        return self._admin

    def close(self) -> None:
        """Drop the admin client (librdkafka destroys it with the last reference)."""
        self._admin = None

    async def probe(self) -> None:
        """Ask the brokers for metadata once, waiting at most the URL's ``connect_timeout``.

        Raises:
            KafkaUnreachable: No broker answered; the message names librdkafka's last error.
        """
        await asyncio.to_thread(self._probe_sync)

    def _probe_sync(self) -> None:
        timeout = self.settings.connect_timeout_s
        deadline = time.monotonic() + timeout
        folded = self.settings.log
        folded.quiet = True
        try:
            while True:
                try:
                    self.admin().list_topics(timeout=max(0.05, min(0.5, timeout)))
                    return
                except KafkaException as exc:
                    # Serve the queued log lines and errors: last_error names the real cause,
                    # and a refused connection to every broker need not wait out the timeout.
                    self.admin().poll(0)
                    if folded.all_brokers_down or time.monotonic() >= deadline:
                        cause = folded.last_error or str(exc.args[0])
                        raise KafkaUnreachable(
                            f"cannot reach Kafka at {self.settings.bootstrap} ({cause}); "
                            "check the kafka:// URL and that the broker is up"
                        ) from exc
        finally:
            folded.quiet = False

    async def create(self, topic: str, partitions: int | None = None) -> int:
        """Create ``topic`` if missing; return its partition count."""
        return await asyncio.to_thread(self._create_sync, topic, partitions)

    async def ensure(self, topics: Iterable[str]) -> None:
        """Make sure every topic exists (creating missing ones unless the URL forbids it).

        Raises:
            KafkaTopicError: A topic is missing and may not be created, or creation failed.
        """
        missing = sorted({t for t in topics if t not in self._known})
        if missing:
            await asyncio.to_thread(self._ensure_sync, missing)

    def _ensure_sync(self, topics: list[str]) -> None:
        existing = set(self.admin().list_topics(timeout=10).topics)
        for topic in topics:
            if topic in existing:
                self._known.add(topic)
            elif not self.settings.create_topics:
                raise KafkaTopicError(
                    f"topic {topic!r} does not exist on {self.settings.bootstrap} and "
                    "agentstream.create_topics is false; create it first"
                )
            else:
                self._create_sync(topic, None)

    def _create_sync(self, topic: str, partitions: int | None) -> int:
        n = partitions or self.default_partitions
        new = NewTopic(topic, num_partitions=n, replication_factor=self.settings.replication_factor)
        future = self.admin().create_topics([new], operation_timeout=10, request_timeout=15)[topic]
        try:
            future.result()
            log.info("created topic %s with %d partitions", topic, n)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaTopicError(f"cannot create topic {topic!r}: {exc}") from exc
        self._known.add(topic)
        meta = self.admin().list_topics(topic, timeout=10).topics.get(topic)
        return len(meta.partitions) if meta is not None and meta.partitions else n


class KafkaSender:
    """The idempotent producer of one transport, with awaited delivery reports.

    Args:
        settings: The parsed URL.
    """

    REPLACE_INITIAL_S = 0.5
    REPLACE_MAX_S = 30.0

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer: Producer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._replace_delay = self.REPLACE_INITIAL_S
        self._replace_after = 0.0
        self.replacements = 0

    def _start(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self.settings.producer_config())
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._serve, args=(self._producer,), name="agentstream-kafka-producer"
            )
            self._thread.daemon = True
            self._thread.start()
        return self._producer

    def _serve(self, producer: Producer) -> None:
        while not self._stop.is_set():
            producer.poll(0.05)

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        """Publish records and wait until the broker acknowledged all of them.

        Raises:
            KafkaDeliveryError: A record was not acknowledged (after librdkafka's own retries).
        """
        if not records:
            return
        producer = self._start()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        refused_lanes: set[tuple[str, bytes]] = set()
        for rec in records:
            future: asyncio.Future[None] = loop.create_future()
            futures.append(future)
            if rec.key is not None and (rec.topic, rec.key) in refused_lanes:
                # Never let a record overtake a refused one of its key.
                future.set_exception(
                    KafkaDeliveryError("not sent: an earlier record of its key was refused")
                )
                continue
            while True:
                try:
                    producer.produce(
                        rec.topic,
                        value=rec.value,
                        key=rec.key,
                        headers=record_headers(rec),
                        on_delivery=_reporter(loop, future),
                    )
                    break
                except BufferError:
                    # The local queue is full: let the poll thread drain delivery reports.
                    await asyncio.sleep(0.01)
                except KafkaException as exc:
                    # Refused before sending: too large or an unknown topic (this record
                    # only), or the producer is in a fatal state (every record, until replaced).
                    refusal = KafkaDeliveryError(str(exc))
                    refusal.fatal = poisons_producer(exc.args[0])
                    future.set_exception(refusal)
                    if rec.key is not None:
                        refused_lanes.add((rec.topic, rec.key))
                    break
        results = await asyncio.gather(*futures, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            self._replace_delay = self.REPLACE_INITIAL_S
        else:
            fatal = next((e for e in errors if _is_fatal(e)), None)
            if fatal is not None:
                await self._replace(fatal)
            acknowledged = frozenset(i for i, r in enumerate(results) if r is None)
            raise KafkaDeliveryError(
                f"{len(errors)} of {len(records)} record(s) not acknowledged: {errors[0]}",
                acknowledged,
            ) from errors[0]

    async def _replace(self, error: BaseException) -> None:
        """Drop a producer that can never succeed again; the next send starts a new one.

        Replacements back off (doubling up to ``REPLACE_MAX_S``) so a broker that fences every
        new producer at once is not hammered; the records stay in the outbox meanwhile.
        """
        now = time.monotonic()
        if now < self._replace_after:
            return
        self.replacements += 1
        log.warning(
            "the Kafka producer is unusable (%s); replacing it (next replacement no sooner "
            "than %.1fs)",
            error,
            self._replace_delay,
        )
        self._replace_after = now + self._replace_delay
        self._replace_delay = min(self.REPLACE_MAX_S, self._replace_delay * 2)
        # Its records are journaled in the outbox: no need to wait long for what it still holds.
        await self.close(timeout_s=1.0)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Flush what is queued, then stop the delivery-report thread."""
        producer, thread = self._producer, self._thread
        self._producer = self._thread = None
        if producer is None:
            return
        try:
            left = await asyncio.to_thread(producer.flush, timeout_s)
            if left:
                log.warning("%d record(s) were not delivered before close", left)
        finally:
            self._stop.set()
            if thread is not None:
                await asyncio.to_thread(thread.join, 5.0)
            await asyncio.to_thread(producer.close)


def _reporter(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> Any:
    def report(err: KafkaError | None, msg: KafkaMessage) -> None:
        del msg
        # A closed loop raises RuntimeError: nobody waits for this report any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, err)

    return report


def _settle(future: asyncio.Future[None], err: KafkaError | None) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(None)
    else:
        error = KafkaDeliveryError(str(err))
        error.fatal = poisons_producer(err)
        future.set_exception(error)


def _is_fatal(error: BaseException) -> bool:
    return bool(getattr(error, "fatal", False))
