"""How agentstream records travel as SQS messages (and SNS notifications), and back.

SQS carries a text body, at most ten typed message attributes and, on FIFO queues, a message
group id and a deduplication id. Records carry bytes, a key and ordered headers. The mapping:

* **Value.** Sent as the body when it is text SQS accepts (UTF-8 of the characters SQS allows,
  no carriage return); otherwise base64, flagged by the ``agentstream-body`` attribute, so the
  bytes come back untouched. SQS has no null body: a tombstone (value None) is sent as the
  body ``null`` flagged ``agentstream-body: null``, and comes back as None (a body ``null``
  without the flag is the four bytes ``null``).
* **Key.** On FIFO queues the key is the ``MessageGroupId`` (the key text when it is a valid
  group id, else ``h-`` and its SHA-256); the exact key bytes also travel in the
  ``agentstream-key`` attribute (``String`` when it is text, else ``Binary``). A received
  message's key is that attribute, else its ``MessageGroupId`` (messages from other
  producers), else None.
* **Headers.** Each header becomes a message attribute (``String`` when it is valid text, else
  ``Binary``) when they all fit: names valid and unique, values non-empty, at most ten
  attributes in all. Otherwise all headers travel packed, in order, in ``agentstream-headers``.
  Attributes of other producers come back as headers (``Number`` values as their text).
* **Dedupe id.** On FIFO queues ``OutgoingRecord.dedupe_id`` is the ``MessageDeduplicationId``
  (as is, when valid, else ``h-`` and its SHA-256); a record without one gets a random id,
  unless the queue deduplicates by content.

A record larger than the destination allows loses its largest headers first (their names are
listed in ``agentstream-dropped-headers``); a value that alone is too large cannot be sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentstream.event import Headers, OutgoingRecord
from agentstream.failures import OversizedPayload

KEY_ATTRIBUTE = "agentstream-key"
HEADERS_ATTRIBUTE = "agentstream-headers"
BODY_ATTRIBUTE = "agentstream-body"
DROPPED_HEADER = "agentstream-dropped-headers"
RESERVED_ATTRIBUTES = frozenset({KEY_ATTRIBUTE, HEADERS_ATTRIBUTE, BODY_ATTRIBUTE})
TOMBSTONE_BODY = "null"
"""Body and ``agentstream-body`` flag of a tombstone (SQS refuses an empty body)."""
MAX_ATTRIBUTES = 10
DEFAULT_GROUP = "default"
"""Group id of records without a key on FIFO destinations (one group: produced order)."""

_INVALID_TEXT = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NAME = re.compile(r"^(?!\.)(?!.*\.\.)(?!.*\.$)[A-Za-z0-9_.\-]{1,256}$")
_FIFO_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


@dataclass(frozen=True, slots=True)
class Attribute:
    """One message attribute: ``String`` or ``Binary`` and its value."""

    data_type: str
    value: str | bytes

    @property
    def size(self) -> int:
        """Bytes SQS counts for the attribute's type and value."""
        raw = self.value.encode() if isinstance(self.value, str) else self.value
        return len(self.data_type) + len(raw)


@dataclass(frozen=True, slots=True)
class EncodedRecord:
    """A record ready for ``SendMessageBatch`` or ``PublishBatch``.

    Attributes:
        body: Message body text.
        attributes: Message attributes by name.
        group_id: FIFO message group id, else None.
        dedupe_id: FIFO deduplication id, else None (content-based deduplication).
    """

    body: str
    attributes: dict[str, Attribute]
    group_id: str | None
    dedupe_id: str | None

    @property
    def size(self) -> int:
        """Bytes SQS counts against its message size limit."""
        return len(self.body.encode()) + sum(
            len(name) + attr.size for name, attr in self.attributes.items()
        )


def is_sendable_text(text: str) -> bool:
    """Whether SQS carries ``text`` unchanged (its allowed characters, no carriage return)."""
    return _INVALID_TEXT.search(text) is None


def _as_text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if is_sendable_text(text) else None


def fifo_id(text: str) -> str:
    """A valid FIFO group or deduplication id for ``text`` (itself when already valid)."""
    if _FIFO_ID.match(text):
        return text
    return "h-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _group_id(key: bytes | None) -> str:
    if key is None:
        return DEFAULT_GROUP
    text = _as_text(key)
    if text is not None and _FIFO_ID.match(text):
        return text
    return "h-" + hashlib.sha256(key).hexdigest()


def _header_attributes(headers: Headers, room: int) -> dict[str, Attribute] | None:
    """Headers as individual attributes, or None when they must be packed."""
    if len(headers) > room:
        return None
    out: dict[str, Attribute] = {}
    for name, value in headers:
        if (
            name in out
            or name in RESERVED_ATTRIBUTES
            or not _ATTRIBUTE_NAME.match(name)
            or name.lower().startswith(("aws.", "amazon."))
            or not value
        ):
            return None
        text = _as_text(value)
        out[name] = Attribute("String", text) if text is not None else Attribute("Binary", value)
    return out


def pack_headers(headers: Headers) -> str:
    """Headers as compact JSON text, values in base64, order kept."""
    return json.dumps(
        [[k, base64.b64encode(v).decode()] for k, v in headers], separators=(",", ":")
    )


def unpack_headers(text: str) -> Headers:
    """Inverse of :func:`pack_headers`."""
    return tuple((str(k), base64.b64decode(v)) for k, v in json.loads(text))


def _encode(
    record: OutgoingRecord, headers: Headers, *, fifo: bool, content_dedupe: bool
) -> EncodedRecord:
    attributes: dict[str, Attribute] = {}
    text = None if record.value is None else _as_text(record.value)
    if record.value is None:
        body = TOMBSTONE_BODY
        attributes[BODY_ATTRIBUTE] = Attribute("String", TOMBSTONE_BODY)
    elif text is None:
        body = base64.b64encode(record.value).decode()
        attributes[BODY_ATTRIBUTE] = Attribute("String", "base64")
    else:
        body = text
    if record.key is not None and record.key != b"":
        key_text = _as_text(record.key)
        attributes[KEY_ATTRIBUTE] = (
            Attribute("String", key_text) if key_text else Attribute("Binary", record.key)
        )
    individual = _header_attributes(headers, MAX_ATTRIBUTES - len(attributes))
    if individual is not None:
        attributes.update(individual)
    elif headers:
        attributes[HEADERS_ATTRIBUTE] = Attribute("String", pack_headers(headers))
    group_id: str | None = None
    dedupe_id: str | None = None
    if fifo:
        group_id = _group_id(record.key)
        if record.dedupe_id:
            dedupe_id = fifo_id(record.dedupe_id)
        elif not content_dedupe:
            dedupe_id = uuid.uuid4().hex
    return EncodedRecord(body, attributes, group_id, dedupe_id)


def encode_record(
    record: OutgoingRecord, *, fifo: bool, content_dedupe: bool = False, max_size: int = 262_144
) -> EncodedRecord:
    """Encode a record for a queue or topic.

    Args:
        record: The record.
        fifo: Whether the destination is FIFO (group and deduplication ids).
        content_dedupe: Whether the FIFO destination deduplicates by content.
        max_size: The destination's message size limit in bytes.

    Raises:
        OversizedPayload: The value alone does not fit.
    """
    headers = record.headers
    encoded = _encode(record, headers, fifo=fifo, content_dedupe=content_dedupe)
    if encoded.size <= max_size:
        return encoded
    # Too large: drop the largest headers (stack traces, typically) until it fits.
    dropped: list[str] = []
    remaining = list(headers)
    while remaining and encoded.size > max_size:
        largest = max(range(len(remaining)), key=lambda i: len(remaining[i][1]))
        dropped.append(remaining.pop(largest)[0])
        kept = (*remaining, (DROPPED_HEADER, ",".join(dropped).encode()))
        encoded = _encode(record, kept, fifo=fifo, content_dedupe=content_dedupe)
    if encoded.size > max_size:
        raise OversizedPayload(
            f"record for {record.topic!r} is {encoded.size} bytes encoded; the destination "
            f"accepts at most {max_size}"
        )
    return encoded


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    """The agentstream view of a received SQS message's content."""

    key: bytes | None
    value: bytes | None
    headers: Headers


def _attribute_bytes(attr: Mapping[str, Any]) -> bytes:
    data_type = str(attr.get("DataType", "String"))
    if data_type.startswith("Binary"):
        raw = attr.get("BinaryValue", b"")
        return raw if isinstance(raw, bytes) else str(raw).encode()
    return str(attr.get("StringValue", "")).encode()


def decode_message(
    body: str, attributes: Mapping[str, Mapping[str, Any]], group_id: str | None
) -> DecodedMessage:
    """Recover key, value and headers from a received message.

    Args:
        body: The message body.
        attributes: Its message attributes (``MessageAttributes``).
        group_id: Its ``MessageGroupId`` (FIFO queues), else None.
    """
    encoding = attributes.get(BODY_ATTRIBUTE)
    flag = None if encoding is None else _attribute_bytes(encoding)
    value: bytes | None = body.encode()
    if flag == b"base64":
        try:
            value = base64.b64decode(body, validate=True)
        except binascii.Error:
            value = body.encode()
    elif flag == TOMBSTONE_BODY.encode():
        value = None
    key_attr = attributes.get(KEY_ATTRIBUTE)
    if key_attr is not None:
        key: bytes | None = _attribute_bytes(key_attr)
    elif group_id is not None:
        key = group_id.encode()
    else:
        key = None
    headers: Headers = ()
    packed = attributes.get(HEADERS_ATTRIBUTE)
    if packed is not None:
        try:
            headers = unpack_headers(_attribute_bytes(packed).decode())
        except (ValueError, TypeError, binascii.Error):
            headers = ((HEADERS_ATTRIBUTE, _attribute_bytes(packed)),)
    headers = (
        *headers,
        *(
            (name, _attribute_bytes(attr))
            for name, attr in attributes.items()
            if name not in RESERVED_ATTRIBUTES
        ),
    )
    return DecodedMessage(key, value, headers)
