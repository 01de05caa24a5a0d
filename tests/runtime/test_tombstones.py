"""What an agent gets for a tombstone (a record whose value is null, a delete on a compacted
topic): None when its payload type accepts None, else a dead letter that says why."""

from __future__ import annotations

from pydantic import BaseModel

from agentstream import Context
from agentstream.event import OutgoingRecord
from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from agentstream.transports.embedded import EmbeddedTransport
from tests.runtime.helpers import Ticket, make_app


async def produce(db_path, records: list[OutgoingRecord]) -> None:
    transport = EmbeddedTransport(db_path)
    await transport.start()
    try:
        await transport.produce(records)
    finally:
        await transport.close()


def ticket(topic: str, ticket_id: str, customer: str) -> OutgoingRecord:
    value = Ticket(ticket_id=ticket_id, customer_id=customer).model_dump_json().encode()
    return OutgoingRecord(topic, customer.encode(), value, (("ce_id", ticket_id.encode()),))


def tombstone(topic: str, customer: str, event_id: str) -> OutgoingRecord:
    return OutgoingRecord(topic, customer.encode(), None, (("ce_id", event_id.encode()),))


class Seen(BaseModel):
    kind: str
    value: str | None


async def test_an_optional_payload_gets_none_for_a_tombstone_in_order_after_its_key(
    db_url, db_path
):
    app = make_app(db_url)
    seen: list[tuple[str, str, object]] = []

    # identity and key functions of the payload are not asked about a tombstone
    @app.agent(
        source="accounts", key=lambda t: t.customer_id, identity=lambda t: t.ticket_id,
        output="seen",
    )  # fmt: skip
    async def track(ctx: Context, t: Ticket | None) -> Seen:
        seen.append((ctx.event.identity, ctx.event.key, t))
        return Seen(kind="delete" if t is None else "upsert", value=t and t.ticket_id)

    async with AppHarness(app) as h:
        await produce(
            db_path,
            [ticket("accounts", "T1", "c1"), tombstone("accounts", "c1", "del-1")],
        )
        await h.wait_drained()
        outputs = [m.value for m in h.read("seen")]
    # the tombstone came after the ticket of its key, as None, keyed by the record key
    assert seen[0][:2] == ("T1", "c1") and seen[1] == ("del-1", "c1", None)
    assert outputs == [b'{"kind":"upsert","value":"T1"}', b'{"kind":"delete","value":null}']
    store = SqliteStore(db_path)
    await store.open()
    try:
        event = await store.get_event("track", "del-1")
        assert event is not None and event.state == "completed"
        assert event.input_hash == "tombstone" and event.message is not None
        assert event.message.value is None
    finally:
        await store.close()


async def test_a_payload_type_without_none_dead_letters_a_tombstone_and_goes_on(db_url, db_path):
    app = make_app(db_url)
    done: list[str] = []

    @app.agent(source="tickets", dead_letter="tickets.dlq", key=lambda t: t.customer_id)
    async def strict(ctx: Context, t: Ticket) -> None:
        done.append(t.ticket_id)

    @app.agent(source="raw", dead_letter="raw.dlq", group="raw")
    async def raw(ctx: Context, body: bytes) -> None:
        done.append(body.decode())

    async with AppHarness(app) as h:
        await produce(
            db_path,
            [
                tombstone("tickets", "c1", "gone"),
                ticket("tickets", "T2", "c1"),
                tombstone("raw", "c1", "raw-gone"),
                OutgoingRecord("raw", None, b"", (("ce_id", b"raw-empty"),)),
            ],
        )
        await h.wait_drained()
        [dead] = h.read("tickets.dlq")
        [raw_dead] = h.read("raw.dlq")
    # the consumer went on: the next ticket of the key and the empty bytes were handled
    assert sorted(done) == ["", "T2"]
    assert (dead.key, dead.value, raw_dead.value) == (b"c1", None, None)
    store = SqliteStore(db_path)
    await store.open()
    try:
        [letter] = await store.dead_letters(agent="strict")
        [raw_letter] = await store.dead_letters(agent="raw")
    finally:
        await store.close()
    assert (letter.event_id, letter.failure_class) == ("gone", "poison")
    message = letter.envelope["exception"]["message"]
    assert "tombstone (null value)" in message and "`Ticket | None`" in message
    assert "`bytes | None`" in raw_letter.envelope["exception"]["message"]
