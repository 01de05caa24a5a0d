"""CloudEvents produced with the official SDK, in both modes, on Kafka, SQS and the embedded log."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel

import agentstream
from agentstream.event import Event, Message
from agentstream.failures import UndecodablePayload
from agentstream.formats import CloudEventsDecoder, CloudEventsEncoder
from agentstream.journal.sqlite import SqliteStore
from agentstream.outputs import build_outputs
from agentstream.testing import AppHarness
from tests.formats.conftest import Broker
from tests.runtime.helpers import FAST


class Ticket(BaseModel):
    ticket_id: str
    text: str


def cloud_event(event_id: str) -> CloudEvent:
    return CloudEvent(
        {
            "id": event_id,
            "source": "/helpdesk",
            "type": "com.example.ticket.opened",
            "datacontenttype": "application/json",
            "subject": "customer-9",
        },
        {"ticket_id": "t-1", "text": "my parcel is late"},
    )


def wire(event: CloudEvent, mode: str) -> ce_kafka.KafkaMessage:
    if mode == "binary":
        return ce_kafka.to_binary_event(event)
    return ce_kafka.to_structured_event(event)


@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_a_cloudevent_produced_twice_with_one_id_is_handled_once_with_its_data(
    broker: Broker, mode: str, name: str, tmp_path
):
    # Given an agent with the default decoder on each transport
    source = await broker.source(f"{name}-tickets")
    journal = tmp_path / "journal.db"
    app = agentstream.App(name, broker=broker.url, store=f"sqlite:///{journal}", config=FAST)
    seen: list[tuple[str, Ticket, dict]] = []

    @app.agent(source=source)
    async def triage(ctx: agentstream.Context, ticket: Ticket) -> None:
        seen.append((ctx.identity, ticket, dict(ctx.event.attributes)))

    # When a producer sends the same CloudEvent twice (a retry), built by the official SDK
    message = wire(cloud_event("evt-42"), mode)
    async with AppHarness(app) as h:
        for _ in range(2):
            await broker.publish(source, message.value, message.headers)
        await h.wait_drained(timeout_s=60)
    # Then the handler ran once, on the event's data, with the identity the CloudEvents id
    assert [(i, t) for i, t, _ in seen] == [
        ("evt-42", Ticket(ticket_id="t-1", text="my parcel is late"))
    ]
    attributes = seen[0][2]
    assert attributes["type"] == "com.example.ticket.opened"
    assert attributes["source"] == "/helpdesk"
    assert attributes["subject"] == "customer-9"
    assert attributes["agentstream_mode"] == mode
    # And the journal holds one event under that id
    store = SqliteStore(journal)
    await store.open()
    try:
        assert [e.event_id for e in await store.list_events(agent="triage")] == ["evt-42"]
    finally:
        await store.close()


def _message(value: bytes, headers: dict[str, bytes], key: bytes | None = None) -> Message:
    return Message("t", 0, 7, key, value, tuple(headers.items()))


def test_a_structured_cloudevent_without_an_id_is_poison_not_given_a_random_identity():
    body = json.dumps({"specversion": "1.0", "source": "/s", "type": "t", "data": {}}).encode()
    with pytest.raises(UndecodablePayload, match="id"):
        CloudEventsDecoder().decode(
            _message(body, {"content-type": b"application/cloudevents+json"})
        )


def test_a_required_cloudevents_decoder_refuses_a_plain_record_the_default_passes_it():
    plain = _message(b'{"a": 1}', {})
    with pytest.raises(UndecodablePayload):
        CloudEventsDecoder().decode(plain)
    assert CloudEventsDecoder(required=False).decode(plain).payload == b'{"a": 1}'


def test_a_bare_ce_id_header_without_specversion_stays_a_plain_record_with_that_identity():
    app = agentstream.App("plain", broker="sqlite:///:memory:")

    @app.agent(source="t")
    async def agent(ctx: agentstream.Context, payload: dict) -> None:
        return None

    from agentstream.runtime.intake import interpret

    event = interpret(app.agents["agent"], _message(b'{"a": 1}', {"ce_id": b"x-1"}))
    assert (event.identity, event.payload, event.decode_error) == ("x-1", {"a": 1}, None)


def test_a_binary_mode_tombstone_is_a_cloudevent_without_data_a_bare_one_is_poison_if_required():
    headers = {"ce_specversion": b"1.0", "ce_id": b"del-7", "ce_type": b"t", "ce_source": b"/s"}
    decoded = CloudEventsDecoder().decode(_message(None, headers, key=b"k"))  # type: ignore[arg-type]
    assert (decoded.payload, decoded.identity) == (None, "del-7")
    with pytest.raises(UndecodablePayload, match="tombstone"):
        CloudEventsDecoder().decode(_message(None, {}))  # type: ignore[arg-type]
    assert CloudEventsDecoder(required=False).decode(_message(None, {})).payload is None  # type: ignore[arg-type]


def test_the_structured_partitionkey_is_the_ordering_key_when_the_record_has_none():
    event = cloud_event("e-1")
    ce = CloudEvent({**event.get_attributes(), "partitionkey": "customer-9"}, event.get_data())
    wire_msg = ce_kafka.to_structured_event(ce, key_mapper=lambda _e: None)
    decoded = CloudEventsDecoder().decode(_message(wire_msg.value, wire_msg.headers))
    assert (decoded.identity, decoded.key) == ("e-1", "customer-9")


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_outputs_encoded_as_cloudevents_read_back_with_the_sdk(
    mode: Literal["binary", "structured"],
):
    # Given an output of an event, encoded by the CloudEvents encoder
    encoder = CloudEventsEncoder(type="com.example.triaged", source="/agents/triage", mode=mode)
    event = Event(message=_message(b"{}", {}), identity="evt-1", key="k")

    def encode() -> list:
        return build_outputs(
            agent="triage",
            default_topic="out",
            event=event,
            emitted=[],
            result={"priority": "high"},
            encoder=encoder,
        )

    (record,) = encode()
    # When a consumer reads it with the SDK
    got = ce_kafka.from_kafka(
        ce_kafka.KafkaMessage(dict(record.headers), record.key, record.value),
        JSONFormat(),
    )
    # Then it is a CloudEvent whose id is the deterministic output id, carrying the output
    assert got.get_id() == "evt-1:0"
    assert got.get_type() == "com.example.triaged"
    assert got.get_data() == {"priority": "high"}
    assert encode() == [record]  # the same bytes on every attempt
