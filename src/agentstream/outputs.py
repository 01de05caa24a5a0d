"""Output records: what an event's completion publishes through the outbox.

Every record carries the event identity and a deterministic output id (identity and output
number), in headers and as ``dedupe_id``, so a record published twice after a crash is
recognisable as the same record downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentstream.codec import encode_value
from agentstream.event import Event, Headers, OutgoingRecord

if TYPE_CHECKING:
    from agentstream.formats.base import Encoder

EVENT_ID_HEADER = "agentstream-event-id"
OUTPUT_ID_HEADER = "agentstream-output-id"
AGENT_HEADER = "agentstream-agent"


@dataclass(frozen=True, slots=True)
class Emitted:
    """An output the agent emitted with ``ctx.emit``."""

    value: Any
    topic: str | None
    key: bytes | None
    headers: Headers


def build_outputs(
    *,
    agent: str,
    default_topic: str | None,
    event: Event,
    emitted: Sequence[Emitted],
    result: Any,
    extra_headers: Headers = (),
    encoder: Encoder | None = None,
) -> list[OutgoingRecord]:
    """Records for the emitted values plus the handler's return value (when not None).

    Values without a topic go to ``default_topic``; with neither they are not published. Keys
    default to the event's ordering key, so outputs keep the input's per-key order. Values are
    encoded by ``encoder`` (its headers come right after agentstream's own), else as JSON.
    """
    items = list(emitted)
    if result is not None:
        items.append(Emitted(result, None, None, ()))
    records: list[OutgoingRecord] = []
    for n, item in enumerate(items):
        topic = item.topic or default_topic
        if topic is None:
            continue
        output_id = f"{event.identity}:{n}"
        encoded_headers: Headers = ()
        if encoder is None:
            value = encode_value(item.value)
        else:
            encoded = encoder.encode(item.value, event=event, topic=topic, index=n)
            value, encoded_headers = encoded.value, encoded.headers
        headers: Headers = (
            (EVENT_ID_HEADER, event.identity.encode()),
            (OUTPUT_ID_HEADER, output_id.encode()),
            (AGENT_HEADER, agent.encode()),
            *encoded_headers,
            *item.headers,
            *extra_headers,
        )
        records.append(
            OutgoingRecord(
                topic=topic,
                key=item.key if item.key is not None else event.key.encode(),
                value=value,
                headers=headers,
                dedupe_id=f"{agent}:{output_id}",
            )
        )
    return records
