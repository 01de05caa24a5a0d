"""The decoder and encoder hooks: how record bytes become an agent's input, and outputs bytes.

A :class:`Decoder` receives the raw :class:`~agentstream.event.Message` (value, key, headers,
topic) and returns a :class:`Decoded`: the payload (bytes to be parsed as the agent's input
type, or already decoded data such as a dict) plus optional hints: the event identity, the
ordering key and envelope attributes shown on ``ctx.event.attributes``. The runtime validates
the payload against the handler's input type afterwards, so a decoder only unwraps.

A decoder raises :class:`~agentstream.failures.PoisonError` (usually
:class:`~agentstream.failures.UndecodablePayload`) for bytes it cannot read; the event is then
dead-lettered at once with its original bytes.

An :class:`Encoder` does the reverse for output records: value in, bytes and headers out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol, runtime_checkable

from agentstream.event import Event, Headers, Message

NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})
"""The attributes of a record without an envelope (shared, read-only)."""


class Decoded(NamedTuple):
    """What a decoder made of a message (a tuple: built for every record, so it is cheap).

    Attributes:
        payload: Bytes (parsed as JSON, text or bytes by the agent's input type) or decoded data
            (validated into the input type).
        identity: Event identity hint (a CloudEvents ``id``); used unless the agent sets
            ``identity=``.
        key: Ordering key hint; used unless the agent sets ``key=``, before the record key.
        attributes: Envelope attributes (CloudEvents attributes, schema id), shown on
            ``ctx.event.attributes``.
    """

    payload: Any
    identity: str | None = None
    key: str | None = None
    attributes: Mapping[str, Any] = NO_ATTRIBUTES


@runtime_checkable
class Decoder(Protocol):
    """Turns a message into a :class:`Decoded`; raises a PoisonError for unreadable bytes."""

    blocking: bool
    """Whether :meth:`decode` may block (network or disk): it then runs off the event loop."""

    def decode(self, message: Message) -> Decoded:
        """Decode one message."""
        ...


@dataclass(frozen=True, slots=True)
class Encoded:
    """An output value as record bytes plus headers to add.

    Attributes:
        value: Record value bytes.
        headers: Headers the encoding needs (content type, CloudEvents attributes...).
    """

    value: bytes
    headers: Headers = ()


@runtime_checkable
class Encoder(Protocol):
    """Turns an output value into record bytes and headers."""

    blocking: bool
    """Whether :meth:`encode` may block (a schema registration): it then runs off the loop."""

    def encode(self, value: Any, *, event: Event, topic: str, index: int) -> Encoded:
        """Encode the ``index``-th output of ``event`` bound for ``topic``.

        Must be deterministic: the same output of the same event gives the same bytes, so a
        record re-published after a crash is the same record.
        """
        ...


@runtime_checkable
class BrokerBound(Protocol):
    """A decoder or encoder that takes settings from the app's broker URL when it starts."""

    def bind_broker(self, url: str) -> None:
        """Read what it needs from the broker URL (called before the first record)."""
        ...


def bind_to_broker(hooks: Iterable[object], url: str) -> None:
    """Hand the broker URL to every decoder and encoder that wants it."""
    for hook in hooks:
        if isinstance(hook, BrokerBound):
            hook.bind_broker(url)


class RawDecoder:
    """The default decoder: the value as it is, parsed by the agent's input type.

    Input types ``bytes`` and ``str`` get the bytes and the text; anything else is parsed as
    JSON (and validated into the input model when there is one).
    """

    blocking = False

    def decode(self, message: Message) -> Decoded:
        """The value bytes, untouched."""
        return Decoded(message.value)
