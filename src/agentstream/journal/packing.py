"""Compressed journal values, and source payloads that share their long strings as blobs.

**Compression.** A JSON text of at least :data:`PACK_MIN` bytes (a blob's body, a step's
recorded result) is written *packed*: :func:`pack` gives its UTF-8 bytes compressed with the
standard library's ``zlib`` behind a one-byte marker, or as they were when compression saves
nothing. Packed values go to their own columns (``as_blobs.body_z``, ``as_steps.result_z``),
next to the plain text column that older rows and small values keep, so a row written before
compression reads as it always did. ``zlib`` and not zstd: on the texts a journal holds (one
prompt, one answer, a few KB each, compressed one at a time) zstd without a trained dictionary
saves about 1% more (a 2 KB prompt: 1,227 bytes against zlib's 1,241) at the same speed
(about 40 µs), and it would be a compiled dependency that every install must carry.

**Payloads.** A source message whose value is UTF-8 JSON keeps each string value of at least
:data:`~agentstream.journal.blobs.MIN_BLOB_CHARS` characters as a content-addressed blob, the
same blob (same digest, same body: the string's canonical JSON) that a prompt sending that
string verbatim references, and that a dead letter of the event references. What stays in the
event row (``as_events.msg_packed``) is the value split into segments: a JSON list of literal
text and ``{"$blob": digest}`` references whose concatenation is the original bytes exactly
(checked before anything is written; a value that does not split exactly, or is not UTF-8 JSON,
stays in ``msg_value`` as it came). A dead letter's envelope references the same blobs for its
copy of the value and of the last prompt (:func:`compact_envelope`).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from agentstream.codec import canonical_json
from agentstream.event import Message
from agentstream.journal.blobs import (
    BLOB_REF,
    MIN_BLOB_CHARS,
    blob_refs,
    compact_request,
    digest_of,
    expand_request,
)

__all__ = [
    "PACK_MIN",
    "USED_AT_STEP_S",
    "blob_rows",
    "compact_envelope",
    "envelope_refs",
    "expand_envelope",
    "join_payload",
    "pack",
    "packed_column",
    "payload_refs",
    "split_payload",
    "stored_message_values",
    "unpack",
    "unpacked",
]

PACK_MIN = 256
"""Texts shorter than this (in bytes) are stored as they are: zlib saves little on them."""

_ZLIB = b"\x00"
"""Marker of a zlib stream (no JSON text and no UTF-8 text of a payload starts with NUL)."""


def pack(text: str) -> bytes:
    """``text`` as UTF-8, zlib-compressed behind a marker byte when that is smaller."""
    data = text.encode("utf-8")
    if len(data) >= PACK_MIN:
        packed = _ZLIB + zlib.compress(data, 6)
        if len(packed) < len(data):
            return packed
    return data


def unpack(data: bytes | memoryview) -> str:
    """Inverse of :func:`pack`."""
    raw = bytes(data)
    if raw[:1] == _ZLIB:
        raw = zlib.decompress(raw[1:])
    return raw.decode("utf-8")


def packed_column(text: str | None) -> tuple[str | None, bytes | None]:
    """``(plain, packed)`` column values of a text: a long one goes packed, the rest plain."""
    if text is None or len(text) < PACK_MIN:
        return text, None
    return None, pack(text)


def unpacked(plain: str | None, packed: bytes | memoryview | None) -> str | None:
    """The text of a ``(plain, packed)`` column pair."""
    return plain if packed is None else unpack(packed)


USED_AT_STEP_S = 60.0
"""A known blob's ``used_at`` moves only when it is older than this: the prompt that repeats
the payload written a moment before at the claim does not rewrite the blob's row (on
PostgreSQL an update is a new row version of the whole body until vacuum)."""


def blob_rows(blobs: Mapping[str, str], now: float) -> list[tuple[Any, ...]]:
    """``(digest, body, body_z, created_at, used_at)`` rows of blobs, in digest order."""
    return [(d, *packed_column(text), now, now) for d, text in sorted(blobs.items())]


def _long_strings(value: Any) -> Iterator[str]:
    """Long string values of a JSON value, in document order (object keys excluded)."""
    if isinstance(value, str):
        if len(value) >= MIN_BLOB_CHARS:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _long_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _long_strings(item)


def split_payload(value: bytes) -> tuple[bytes, dict[str, str]] | None:
    """A message value as packed segments and the string blobs they reference.

    None when the value is short, not UTF-8 JSON, or has no long string that splits out
    exactly: the caller then keeps the value as it came.
    """
    split = _segments(value)
    if split is None:
        return None
    return pack(canonical_json(split[0])), split[1]


def _segments(value: bytes) -> tuple[list[Any], dict[str, str]] | None:
    if len(value) < PACK_MIN:
        return None
    try:
        text = value.decode("utf-8")
        parsed = json.loads(text)
    except ValueError:
        return None
    segments: list[Any] = []
    blobs: dict[str, str] = {}
    cursor = 0
    for string in _long_strings(parsed):
        body = canonical_json(string)
        at = text.find(body, cursor)
        if at < 0:
            continue  # written with other escapes than ours: it stays literal
        digest = digest_of(body)
        if at > cursor:
            segments.append(text[cursor:at])
        segments.append({BLOB_REF: digest})
        blobs[digest] = body
        cursor = at + len(body)
    if not blobs:
        return None
    if cursor < len(text):
        segments.append(text[cursor:])
    if _join(segments, blobs) != value:  # never store what would not read back exactly
        return None
    return segments, blobs


def _join(segments: list[Any], blobs: Mapping[str, str]) -> bytes:
    parts = [blobs[part[BLOB_REF]] if isinstance(part, dict) else part for part in segments]
    return "".join(parts).encode("utf-8")


def stored_message_values(
    messages: Iterable[Message | None],
) -> tuple[list[tuple[bytes | None, bytes | None]], dict[str, str]]:
    """The ``(msg_value, msg_packed)`` columns of each message, and the blobs they reference."""
    columns: list[tuple[bytes | None, bytes | None]] = []
    blobs: dict[str, str] = {}
    for message in messages:
        if message is None:
            columns.append((None, None))
            continue
        split = None if message.value is None else split_payload(message.value)  # None: tombstone
        if split is None:
            columns.append((message.value, None))
        else:
            columns.append((None, split[0]))
            blobs |= split[1]
    return columns, blobs


def payload_refs(packed: bytes | memoryview) -> set[str]:
    """The blob digests a packed payload references."""
    return blob_refs(json.loads(unpack(packed)))


def join_payload(packed: bytes | memoryview, blobs: Mapping[str, str]) -> bytes:
    """The original message value from its packed segments and their blobs.

    Raises:
        KeyError: A referenced blob is missing.
    """
    return _join(json.loads(unpack(packed)), blobs)


def _renamed(item: Mapping[str, Any], old: str, new: str, value: Any) -> dict[str, Any]:
    """``item`` with key ``old`` replaced by ``new`` holding ``value``, in the same place."""
    return {(new if k == old else k): (value if k == old else v) for k, v in item.items()}


def compact_envelope(envelope: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A dead-letter envelope as stored: the copies it carries as blob references.

    The original value (``original.value_b64``) becomes ``original.value_segments`` when it
    splits (:func:`split_payload`: the event row's blobs), and the transcript of the last model
    call (``detail.transcript``) references the prompt's blobs as its step does.

    Returns:
        The envelope to store and the blobs it references (digest -> text).
    """
    out = dict(envelope)
    blobs: dict[str, str] = {}
    original = envelope.get("original")
    if isinstance(original, dict) and isinstance(original.get("value_b64"), str):
        split = _segments(base64.b64decode(original["value_b64"]))
        if split is not None:
            out["original"] = _renamed(original, "value_b64", "value_segments", split[0])
            blobs |= split[1]
    detail = envelope.get("detail")
    if isinstance(detail, dict) and isinstance(detail.get("transcript"), dict):
        transcript, found = compact_request(detail["transcript"])
        out["detail"] = detail | {"transcript": transcript}
        blobs |= found
    return out, blobs


def envelope_refs(envelope: Mapping[str, Any]) -> set[str]:
    """The blob digests a stored envelope references."""
    return blob_refs(dict(envelope))


def expand_envelope(envelope: dict[str, Any], blobs: Mapping[str, str]) -> dict[str, Any]:
    """Inverse of :func:`compact_envelope` (an envelope stored before it is returned as is).

    Raises:
        KeyError: A referenced blob is missing.
    """
    out = dict(envelope)
    original = envelope.get("original")
    if isinstance(original, dict) and "value_segments" in original:
        value = base64.b64encode(_join(original["value_segments"], blobs)).decode()
        out["original"] = _renamed(original, "value_segments", "value_b64", value)
    detail = envelope.get("detail")
    if isinstance(detail, dict) and isinstance(detail.get("transcript"), dict):
        out["detail"] = detail | {"transcript": expand_request(detail["transcript"], blobs)}
    return out
