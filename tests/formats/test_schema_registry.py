"""Schema Registry wire-format records (Avro, JSON Schema, Protobuf) in and out.

The registry is the stand-in of tests/formats/registry.py (see its docstring for why); the
records are written and read by confluent-kafka's own serializers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import BaseModel

import agentstream
from agentstream.event import Message
from agentstream.formats.schema_registry import SchemaRegistryDecoder, SchemaRegistryEncoder
from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from tests.conformance.conftest import KAFKA_TEST_SETTINGS
from tests.formats.proto import ticket_message_class
from tests.formats.registry import Registry, schema_registry
from tests.kafka.conftest import read_topic as read_kafka_topic
from tests.runtime.helpers import FAST

AVRO_TICKET = json.dumps(
    {
        "type": "record",
        "name": "Ticket",
        "namespace": "com.example",
        "fields": [
            {"name": "ticket_id", "type": "string"},
            {"name": "priority", "type": "int"},
            {"name": "text", "type": "string"},
        ],
    }
)
JSON_TICKET = json.dumps(
    {
        "type": "object",
        "properties": {
            "ticket_id": {"type": "string"},
            "priority": {"type": "integer"},
            "text": {"type": "string"},
        },
        "required": ["ticket_id", "priority", "text"],
    }
)
AVRO_TRIAGE = json.dumps(
    {
        "type": "record",
        "name": "Triage",
        "namespace": "com.example",
        "fields": [{"name": "ticket_id", "type": "string"}, {"name": "queue", "type": "string"}],
    }
)


class Ticket(BaseModel):
    ticket_id: str
    priority: int
    text: str


class Triage(BaseModel):
    ticket_id: str
    queue: str


@pytest.fixture
def registry() -> Iterator[tuple[str, Registry]]:
    with schema_registry() as served:
        yield served


def serialize(fmt: str, url: str, topic: str, value: dict[str, Any]) -> bytes:
    client = SchemaRegistryClient({"url": url})
    ctx = SerializationContext(topic, MessageField.VALUE)
    if fmt == "avro":
        return AvroSerializer(client, AVRO_TICKET)(value, ctx)
    if fmt == "json":
        return JSONSerializer(JSON_TICKET, client)(value, ctx)
    cls = ticket_message_class()
    return ProtobufSerializer(cls, client, {"use.deprecated.format": False})(cls(**value), ctx)


def decoder(fmt: str, url: str) -> SchemaRegistryDecoder:
    if fmt == "protobuf":
        return SchemaRegistryDecoder(fmt, url=url, message_type=ticket_message_class())
    return SchemaRegistryDecoder(fmt, url=url)


async def dead_letters(journal) -> list:
    store = SqliteStore(journal)
    await store.open()
    try:
        return await store.dead_letters(limit=100)
    finally:
        await store.close()


@pytest.mark.parametrize("fmt", ["avro", "json", "protobuf"])
def test_a_tombstone_decodes_to_none_as_confluents_deserializers_read_it(fmt):
    tombstone = Message("tickets", 0, 3, b"c1", None)
    decoded = decoder(fmt, "http://127.0.0.1:9").decode(tombstone)  # no registry call made
    assert (decoded.payload, decoded.attributes) == (None, {"schema_format": fmt})


@pytest.mark.parametrize("fmt", ["avro", "json", "protobuf"])
async def test_wire_format_records_decode_into_the_input_model(fmt, registry, tmp_path):
    # Given an agent with the Schema Registry decoder, and records written by confluent-kafka's
    # serializer for its format, on the embedded log
    url, state = registry
    log = f"sqlite:///{tmp_path / 'log.db'}"
    app = agentstream.App("sr", broker=log, store=f"sqlite:///{tmp_path / 'j.db'}", config=FAST)
    seen: list[tuple[Ticket, dict]] = []

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, decoder=decoder(fmt, url))
    async def triage(ctx: agentstream.Context, ticket: Ticket) -> None:
        seen.append((ticket, dict(ctx.event.attributes)))

    raw = serialize(fmt, url, "tickets", {"ticket_id": "T-1", "priority": 2, "text": "late"})
    assert raw[0] == 0  # the magic byte: this is the wire format
    async with AppHarness(app) as h:
        await h.produce("tickets", [raw])
        await h.wait_drained(timeout_s=30)
    # Then the handler got the pydantic model, and the schema id is on the event
    assert [t for t, _ in seen] == [Ticket(ticket_id="T-1", priority=2, text="late")]
    assert seen[0][1] == {"schema_id": 1, "schema_format": fmt}
    assert "GET /schemas/ids/1" in state.requests


async def test_a_record_with_an_unknown_schema_id_is_a_poison_dead_letter_with_its_bytes(
    registry, tmp_path
):
    url, _ = registry
    journal = tmp_path / "j.db"
    app = agentstream.App(
        "sr", broker=f"sqlite:///{tmp_path / 'log.db'}", store=f"sqlite:///{journal}", config=FAST
    )
    handled: list[Ticket] = []

    @app.agent(source="tickets", decoder=SchemaRegistryDecoder("avro", url=url))
    async def triage(ctx: agentstream.Context, ticket: Ticket) -> None:
        handled.append(ticket)

    good = serialize("avro", url, "tickets", {"ticket_id": "T-1", "priority": 1, "text": "a"})
    wrong = b"\x00" + (999).to_bytes(4, "big") + good[5:]  # the same body under schema id 999
    async with AppHarness(app) as h:
        await h.produce("tickets", [wrong, good])
        await h.wait_drained(timeout_s=30)
    # The good record behind it was handled; the wrong one is dead-lettered as poison, bytes intact
    assert [t.ticket_id for t in handled] == ["T-1"]
    (letter,) = await dead_letters(journal)
    assert letter.failure_class == "poison"
    assert base64.b64decode(letter.envelope["original"]["value_b64"]) == wrong
    assert "schema id 999" in json.dumps(letter.envelope)


async def test_avro_in_and_out_on_kafka_with_registry_credentials_in_the_url(
    registry, kafka_bootstrap, tmp_path, name
):
    # Given an agent on Kafka reading Avro and writing Avro, the registry named with credentials
    url, state = registry
    authed = url.replace("http://", "http://svc:s3cret@")
    app = agentstream.App(
        name,
        broker=f"kafka://{kafka_bootstrap}?{KAFKA_TEST_SETTINGS}",
        store=f"sqlite:///{tmp_path / 'j.db'}",
        config=FAST,
    )

    @app.agent(
        source=f"{name}-tickets",
        output=f"{name}-triage",
        identity=lambda t: t.ticket_id,
        decoder=SchemaRegistryDecoder("avro", url=authed),
        encoder=SchemaRegistryEncoder("avro", schema=AVRO_TRIAGE, url=authed),
    )
    async def triage(ctx: agentstream.Context, ticket: Ticket) -> Triage:
        return Triage(
            ticket_id=ticket.ticket_id, queue="urgent" if ticket.priority > 1 else "normal"
        )

    # When a plain confluent-kafka producer sends an Avro record twice
    raw = serialize(
        "avro", url, f"{name}-tickets", {"ticket_id": "T-9", "priority": 3, "text": "x"}
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for _ in range(2):
        producer.produce(f"{name}-tickets", value=raw)
    assert producer.flush(10) == 0
    async with AppHarness(app) as h:
        await h.wait_drained(timeout_s=60)
    # Then one Avro output is on the output topic, readable with the registry's deserializer
    (out,) = read_kafka_topic(kafka_bootstrap, f"{name}-triage", want=1)
    ctx = SerializationContext(f"{name}-triage", MessageField.VALUE)
    got = AvroDeserializer(SchemaRegistryClient({"url": url}))(out.value, ctx)
    assert got == {"ticket_id": "T-9", "queue": "urgent"}
    assert f"POST /subjects/{name}-triage-value/versions" in state.requests
    assert f"Basic {base64.b64encode(b'svc:s3cret').decode()}" in state.authorizations


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_the_registry_named_in_the_broker_url_serves_decoder_and_encoder(
    fmt, registry, kafka_bootstrap, tmp_path, name
):
    # Given a Kafka broker URL that also names the registry (and its credentials)
    url, state = registry
    broker = (
        f"kafka://{kafka_bootstrap}?{KAFKA_TEST_SETTINGS}&schema.registry.url={url}"
        "&schema.registry.basic.auth.user.info=svc:s3cret"
    )
    app = agentstream.App(name, broker=broker, store=f"sqlite:///{tmp_path / 'j.db'}", config=FAST)
    cls = ticket_message_class()
    if fmt == "json":
        out_encoder = SchemaRegistryEncoder("json", schema=JSON_TICKET)
    else:
        out_encoder = SchemaRegistryEncoder("protobuf", message_type=cls)

    @app.agent(
        source=f"{name}-in",
        output=f"{name}-out",
        identity=lambda t: t.ticket_id,
        decoder=SchemaRegistryDecoder(fmt, message_type=cls if fmt == "protobuf" else None),
        encoder=out_encoder,
    )
    async def bump(ctx: agentstream.Context, ticket: Ticket) -> Ticket:
        return ticket.model_copy(update={"priority": ticket.priority + 1})

    raw = serialize(fmt, url, f"{name}-in", {"ticket_id": "T-3", "priority": 1, "text": "x"})
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(f"{name}-in", value=raw)
    assert producer.flush(10) == 0
    async with AppHarness(app) as h:
        await h.wait_drained(timeout_s=60)
    (out,) = read_kafka_topic(kafka_bootstrap, f"{name}-out", want=1)
    assert out.value[0] == 0
    got = decoder(fmt, url).decode(out)
    assert Ticket.model_validate(got.payload) == Ticket(ticket_id="T-3", priority=2, text="x")
    assert f"Basic {base64.b64encode(b'svc:s3cret').decode()}" in state.authorizations
