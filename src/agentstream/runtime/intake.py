"""Intake: turn a transport's message into an event for one agent.

Decoding, identity, ordering key and entity version are derived here, on the poll loop, because
the key decides which queue the event joins. Nothing here may raise: a message that cannot be
decoded, or whose key or version function fails, becomes a poison event carrying its error, so
it is dead-lettered in order instead of killing the consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from agentstream.agent import AgentSpec
from agentstream.event import (
    IDENTITY_OVERRIDE_HEADER,
    Event,
    Message,
    derive_identity,
    derive_key,
    fallback_identity,
    text_of,
)
from agentstream.failures import PoisonError, SchemaInvalidPayload, UndecodablePayload
from agentstream.formats.base import Decoded

_UNDECODED = Decoded(None)


def interpret(spec: AgentSpec, message: Message) -> Event:
    """Derive the event an agent sees from a message; never raises."""
    decoded = _UNDECODED
    error: BaseException | None = None
    try:
        decoded = spec.decode(message)
    except PoisonError as exc:
        error = exc
    except Exception as exc:
        error = UndecodablePayload(f"decoder {type(spec.decoder).__name__} failed: {exc!r}")
    payload: Any = decoded.payload
    ok = error is None
    # A tombstone has no payload: identity, key and version functions are not asked about it;
    # its identity comes from headers (else its coordinates), its key is the record key.
    if message.value is None and payload is None:
        ok = False
    override = text_of(message.header(IDENTITY_OVERRIDE_HEADER))
    try:
        if override:
            identity, source = override, "redrive"
        else:
            identity, source = derive_identity(
                message, payload, spec.identity, payload_ok=ok, hint=decoded.identity
            )
    except Exception as exc:
        error = error or SchemaInvalidPayload(f"identity function failed: {exc!r}")
        identity, source = fallback_identity(message)
        ok = False
    try:
        key = derive_key(message, payload, spec.key, identity, payload_ok=ok, hint=decoded.key)
    except Exception as exc:
        error = error or SchemaInvalidPayload(f"key function failed: {exc!r}")
        key = text_of(message.key) or identity
        ok = False
    version: int | None = None
    if spec.version is not None and ok:
        try:
            raw = spec.version(payload)
            version = None if raw is None else int(raw)
        except Exception as exc:
            error = SchemaInvalidPayload(f"version function failed: {exc!r}")
    return Event(
        message=message,
        identity=identity,
        key=key,
        payload=payload if error is None else None,
        decode_error=error,
        version=version,
        identity_source=source,
        attributes=decoded.attributes,
    )


async def interpret_all(spec: AgentSpec, messages: Sequence[Message]) -> list[Event]:
    """Interpret a polled batch; off the event loop when it runs user code or may block.

    An identity, key or version function is user code: however cheap it should be, a slow one
    must not stall the loop (lease bookkeeping, commits and running events share it).
    """
    if not messages:
        return []
    user_code = any(callable(f) for f in (spec.identity, spec.key, spec.version))
    if spec.decoder.blocking or user_code:
        return await asyncio.to_thread(lambda: [interpret(spec, m) for m in messages])
    return [interpret(spec, m) for m in messages]
