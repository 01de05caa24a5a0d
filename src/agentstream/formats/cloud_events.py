"""CloudEvents in and out, through the official ``cloudevents`` SDK (its Kafka binding).

The Kafka protocol binding's header names (``ce_id``, ``ce_type``..., ``content-type``) are the
ones every agentstream transport carries, so one decoder reads CloudEvents on Kafka, SQS and the
embedded log:

* **binary mode**: attributes in ``ce_*`` headers, the data as the record value. Recognised by
  a ``ce_specversion`` header. The handler gets the value parsed by its input type, as for a
  plain record.
* **structured mode**: the whole event as JSON in the value, with content type
  ``application/cloudevents+json``. The handler gets the event's ``data`` (``data_base64``
  decoded to bytes and parsed by the input type).

Either way the event identity is the CloudEvents ``id``, the ordering key hint is the
``partitionkey`` extension (the record key in binary mode) and the attributes are on
``ctx.event.attributes``. A message that claims to be a CloudEvent but is not a valid one
(missing ``id``, ``source``, ``type`` or ``specversion``) is poison.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import TYPE_CHECKING, Any, Literal

from agentstream.codec import encode_value, to_jsonable
from agentstream.event import Event, Message
from agentstream.failures import UndecodablePayload
from agentstream.formats.base import Decoded, Encoded

if TYPE_CHECKING:
    from cloudevents.core.base import BaseCloudEvent
    from cloudevents.core.bindings.kafka import KafkaMessage
    from cloudevents.core.formats.json import JSONFormat

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
SPECVERSION_HEADER = "ce_specversion"


@functools.cache
def _format() -> JSONFormat:
    # The SDK (and dateutil) load on the first CloudEvent, not with every agentstream import.
    from cloudevents.core.formats.json import JSONFormat

    return JSONFormat()


def mode_of(message: Message) -> str | None:
    """``binary``, ``structured`` or None, from the headers in one pass (on every record)."""
    structured = False
    for name, value in message.headers:
        lower = name.lower()
        if lower == SPECVERSION_HEADER:
            return "binary"
        if lower == "content-type":
            structured = value.strip().lower().startswith(b"application/cloudevents")
    return "structured" if structured else None


def _kafka_message(message: Message) -> KafkaMessage:
    from cloudevents.core.bindings.kafka import KafkaMessage

    return KafkaMessage(
        headers={name.lower(): value for name, value in message.headers},
        key=message.key,
        value=message.value,  # type: ignore[arg-type]  # None (a tombstone): no data
    )


class _StrictFactory:
    """Builds SDK events but refuses a missing ``id`` (the SDK would invent a random one)."""

    def __init__(self) -> None:
        self.given: dict[str, Any] = {}

    def __call__(self, attributes: dict[str, Any], data: Any) -> BaseCloudEvent:
        from cloudevents.core.bindings.common import get_event_factory_for_version
        from cloudevents.core.exceptions import MissingRequiredAttributeError

        if not attributes.get("id"):
            raise MissingRequiredAttributeError(attribute_name="id")
        self.given = dict(attributes)
        factory = get_event_factory_for_version(str(attributes.get("specversion", "1.0")))
        return factory(attributes, data)


class CloudEventsDecoder:
    """Decode CloudEvents (binary and structured mode) with the official SDK.

    Args:
        required: Whether every message must be a CloudEvent (others are poison). When false,
            a message that is neither binary nor structured mode passes through untouched (the
            default decoder of every agent works this way).
    """

    blocking = False

    def __init__(self, *, required: bool = True) -> None:
        self.required = required

    def decode(self, message: Message) -> Decoded:
        """Unwrap a CloudEvent; the payload is its data, the identity its ``id``."""
        mode = mode_of(message) if message.headers else None
        if mode is None:
            if not self.required:
                return Decoded(message.value)
            if message.value is None:
                raise UndecodablePayload("a tombstone (null value) without ce_ headers")
            mode = "structured"
        from cloudevents.core.bindings import kafka as ce_kafka

        factory = _StrictFactory()
        try:
            if mode == "binary":
                event = ce_kafka.from_binary(_kafka_message(message), _format(), factory)
            else:
                event = ce_kafka.from_structured(_kafka_message(message), _format(), factory)
        except Exception as exc:
            raise UndecodablePayload(f"not a valid {mode}-mode CloudEvent: {exc}") from exc
        attributes = {k: v for k, v in event.get_attributes().items() if k in factory.given}
        partition_key = attributes.get("partitionkey")
        payload = message.value if mode == "binary" else event.get_data()
        return Decoded(
            payload,
            identity=str(event.get_id()),
            key=None if partition_key is None else str(partition_key),
            attributes={**attributes, "agentstream_mode": mode},
        )


class CloudEventsEncoder:
    """Publish outputs as CloudEvents 1.0 (JSON data), binary or structured mode.

    The CloudEvents ``id`` of an output is its deterministic output id (event identity and
    output number), so a re-published output is recognisably the same event; ``time`` is the
    input message's timestamp, so the bytes are the same on every attempt and in replay.

    Args:
        type: The ``type`` attribute (for example ``com.example.ticket.triaged``).
        source: The ``source`` attribute (a URI reference naming this agent).
        mode: ``binary`` (attributes in ``ce_*`` headers) or ``structured`` (one JSON
            document).
    """

    blocking = False

    def __init__(
        self, *, type: str, source: str, mode: Literal["binary", "structured"] = "binary"
    ) -> None:
        if mode not in ("binary", "structured"):
            raise ValueError(f"mode must be 'binary' or 'structured', not {mode!r}")
        self.type = type
        self.source = source
        self.mode = mode

    def encode(self, value: Any, *, event: Event, topic: str, index: int) -> Encoded:
        """Wrap one output value in a CloudEvent."""
        from cloudevents.core.bindings import kafka as ce_kafka
        from cloudevents.core.v1.event import CloudEvent

        millis = event.message.timestamp_ms
        attributes: dict[str, Any] = {
            "id": f"{event.identity}:{index}",
            "source": self.source,
            "type": self.type,
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "time": dt.datetime.fromtimestamp(millis / 1000, dt.UTC),
        }
        if self.mode == "binary":
            # The SDK writes the headers; the value is encoded as every other output is.
            out = ce_kafka.to_binary(CloudEvent(attributes), _format(), key_mapper=_no_key)
            return Encoded(encode_value(value), tuple(out.headers.items()))
        data = value if isinstance(value, bytes) else to_jsonable(value)
        out = ce_kafka.to_structured(CloudEvent(attributes, data), _format(), key_mapper=_no_key)
        return Encoded(out.value, tuple(out.headers.items()))


def _no_key(_event: BaseCloudEvent) -> None:
    """The record key stays the runtime's (the event's ordering key), not ``partitionkey``."""
    return None
