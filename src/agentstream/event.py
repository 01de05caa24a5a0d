"""The event envelope: what a transport delivers and what the runtime derives from it.

A transport hands the runtime a :class:`Message` (bytes, key, headers and where it came from).
The runtime turns it into an :class:`Event` by deriving two strings:

* the **identity**, stable across every redelivery, duplicate and replay of the same logical
  event; the journal is keyed by it;
* the **ordering key**, which decides which events must run strictly one after another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from agentstream.failures import ConfigurationError

Headers = tuple[tuple[str, bytes], ...]

IDENTITY_HEADERS: tuple[str, ...] = ("ce_id", "ce-id", "id")
"""Headers read for identity by default, in order (CloudEvents binary mode on Kafka, on HTTP,
and the bare attribute name)."""

IDENTITY_OVERRIDE_HEADER = "agentstream-identity"
"""Set by ``agentstream dlq redrive`` so a re-published message keeps its original identity."""


class TopicPartition(NamedTuple):
    """A partition of a topic (or, for queues, a topic with a single virtual partition)."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


@dataclass(frozen=True, slots=True)
class Message:
    """One record as a transport delivers it, before the runtime interprets it.

    Attributes:
        topic: Source topic or queue name.
        partition: Source partition (0 for queues without partitions).
        offset: Position in the partition; for queues, a per-receipt sequence number.
        key: Record key bytes, if any.
        value: Record value bytes, untouched; None for a tombstone (a Kafka record with a null
            value, a delete on a compacted topic), which is not the same as empty bytes.
        headers: Record headers in their original order.
        timestamp_ms: Broker or producer timestamp, milliseconds since the epoch.
        receipt: Transport-specific handle needed to acknowledge (SQS receipt handle).
        delivery_count: Broker-side receive count when the broker tracks one (SQS
            ``ApproximateReceiveCount``), this delivery included.
        max_deliveries: The broker's own delivery limit, when it has one (the SQS redrive
            policy's ``maxReceiveCount``): past it the broker moves the message elsewhere, so
            the runtime dead-letters on the last delivery the broker allows.
        dedupe_id: Producer-assigned deduplication id carried by the broker (SQS FIFO
            ``MessageDeduplicationId``); the same for every copy the producer sent under it.
        message_id: Broker-assigned id of this message, stable across its redeliveries but
            different for each copy a producer sent (SQS ``MessageId``).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int = 0
    receipt: Any = None
    delivery_count: int | None = None
    max_deliveries: int | None = None
    dedupe_id: str | None = None
    message_id: str | None = None

    @property
    def tp(self) -> TopicPartition:
        """The message's topic and partition."""
        return TopicPartition(self.topic, self.partition)

    @property
    def coordinates(self) -> str:
        """``topic/partition/offset``, the message's address in the source."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def final_delivery(self) -> bool:
        """Whether the broker will not deliver this message again (its delivery limit is hit).

        A limit of 1 leaves no delivery to spare, so it never counts as final here.
        """
        return (
            self.delivery_count is not None
            and self.max_deliveries is not None
            and self.max_deliveries > 1
            and self.delivery_count >= self.max_deliveries
        )

    def header(self, name: str) -> bytes | None:
        """The last value of a header, or None."""
        found: bytes | None = None
        for k, v in self.headers:
            if k == name:
                found = v
        return found


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """A record to publish: an output, a re-emission or a dead letter.

    Attributes:
        topic: Destination topic or queue.
        key: Record key bytes.
        value: Record value bytes; None publishes a tombstone (see :class:`Message`).
        headers: Headers to attach.
        dedupe_id: Deterministic id of this record (event identity and output number); backends
            that can deduplicate (the embedded log, SQS FIFO) use it, all others carry it in the
            ``agentstream-output-id`` header so consumers can.
    """

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    dedupe_id: str | None = None


@dataclass(slots=True)
class Event:
    """A message interpreted for one agent: identity, ordering key and decoded payload.

    Attributes:
        message: The source message, untouched.
        identity: Stable identity of the logical event.
        key: Ordering key; events with equal keys run strictly in order.
        payload: The decoded, validated input, or None when decoding failed.
        decode_error: Why decoding failed, when it did (the event is poison).
        version: Entity version for stale-event detection, when configured.
        identity_source: Where the identity came from: ``header``, ``payload``, ``dedupe_id``,
            ``message_id`` or ``coordinates`` (see :data:`WEAK_IDENTITY_SOURCES`).
        parked_id: Set when the event comes back from the journal's parking (strict ordering),
            not from the transport; its delivery was acknowledged when it was parked.
        woken: Set when the event comes back from a wait (signal or timer), not from the
            transport; its delivery was acknowledged when it was suspended.
        attributes: Envelope attributes the decoder found (a CloudEvent's ``id``, ``source``,
            ``type``, ``time``...; a Schema Registry schema id).
    """

    message: Message
    identity: str
    key: str
    payload: Any = None
    decode_error: BaseException | None = None
    version: int | None = None
    identity_source: str = "header"
    extra: dict[str, Any] = field(default_factory=dict)
    parked_id: int | None = None
    woken: bool = False
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tp(self) -> TopicPartition:
        """Source topic and partition."""
        return self.message.tp


def text_of(raw: bytes | None) -> str | None:
    """Decode key or header bytes as UTF-8, falling back to hex for binary values."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.hex()


IdentitySpec = str | Callable[[Any], Any] | None
"""How an agent derives identity: None (default headers, else the fallback), ``"header:NAME"``,
or a function of the decoded payload."""

WEAK_IDENTITY_SOURCES: frozenset[str] = frozenset({"coordinates", "message_id"})
"""Identity sources that name one copy of a message, not the logical event: a producer that
sends the same event twice makes two identities, so producer duplicates are not caught."""


def fallback_identity(message: Message) -> tuple[str, str]:
    """The identity of a message that has no identity header or payload identity.

    The broker's deduplication id when the producer set one (SQS FIFO), else the broker's
    message id (SQS), else the source coordinates (logs, where an offset is stable).

    Returns:
        ``(identity, source)`` with source ``dedupe_id``, ``message_id`` or ``coordinates``.
    """
    if message.dedupe_id:
        return message.dedupe_id, "dedupe_id"
    if message.message_id:
        return message.message_id, "message_id"
    return message.coordinates, "coordinates"


def derive_identity(
    message: Message,
    payload: Any,
    spec: IdentitySpec,
    *,
    payload_ok: bool,
    hint: str | None = None,
) -> tuple[str, str]:
    """Derive an event's identity and say where it came from.

    Args:
        message: The source message.
        payload: The decoded payload (ignored when ``payload_ok`` is false).
        spec: The agent's identity setting.
        payload_ok: Whether ``payload`` decoded and validated.
        hint: The identity the decoder read from the envelope (a CloudEvents ``id``); it comes
            after an identity function and before the default headers.

    Returns:
        ``(identity, source)`` where source is ``header``, ``payload``, ``envelope`` or that of
        :func:`fallback_identity`.
    """
    if callable(spec):
        if payload_ok:
            value = spec(payload)
            if value is not None and str(value) != "":
                return str(value), "payload"
        if hint:
            return hint, "envelope"
        # A payload that cannot be decoded has no payload identity; headers, then the fallback,
        # still give every redelivery of these exact bytes the same identity.
        names: Sequence[str] = IDENTITY_HEADERS
    elif isinstance(spec, str):
        if not spec.startswith("header:"):
            raise ConfigurationError(
                f"identity={spec!r}: use 'header:NAME' or a function of the payload"
            )
        names = (spec.removeprefix("header:"),)
    else:
        if hint:
            return hint, "envelope"
        names = IDENTITY_HEADERS
    for name in names:
        raw = message.header(name)
        if raw:
            text = text_of(raw)
            if text:
                return text, "header"
    return fallback_identity(message)


def derive_key(
    message: Message,
    payload: Any,
    key_fn: Callable[[Any], Any] | None,
    identity: str,
    *,
    payload_ok: bool,
    hint: str | None = None,
) -> str:
    """Derive the ordering key.

    The key function, else the decoder's hint (a CloudEvents ``partitionkey``), else the record
    key, else the identity.
    """
    if key_fn is not None and payload_ok:
        value = key_fn(payload)
        if value is not None:
            return str(value)
    if hint:
        return hint
    text = text_of(message.key)
    if text:
        return text
    return identity


TOMBSTONE_HASH = "tombstone"
"""The input hash of a tombstone (never a SHA-256 hex digest, so never that of any bytes)."""


def payload_hash(value: bytes | None) -> str:
    """SHA-256 of the payload bytes, recorded with every decision as the input hash.

    A tombstone (None) hashes to :data:`TOMBSTONE_HASH`, not to the digest of empty bytes.
    """
    return TOMBSTONE_HASH if value is None else hashlib.sha256(value).hexdigest()


def encode_headers(headers: Headers) -> str:
    """Serialise headers to JSON text for storage (values hex-encoded)."""
    return json.dumps([[k, v.hex()] for k, v in headers], separators=(",", ":"))


def decode_headers(text: str | None) -> Headers:
    """Inverse of :func:`encode_headers`."""
    if not text:
        return ()
    return tuple((str(k), bytes.fromhex(v)) for k, v in json.loads(text))


def headers_from_mapping(mapping: Mapping[str, str | bytes] | None) -> Headers:
    """Build headers from a mapping of names to text or bytes."""
    if not mapping:
        return ()
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in mapping.items())
