"""Strict ordering: a released parked event never overtakes an earlier parked event of its key.

Parked events of a key are released together. If one of them begins to wait (or is held again
for any reason) the ones after it stay parked behind it; when that hold ends, a later event of
the same release batch must still let the earlier parked one go first. This drives the real
executor and SQLite journal through exactly that state: two parked events of one key, the
key no longer blocked, and the later one handed to the executor first.
"""

from __future__ import annotations

from agentstream import Context, PoisonError
from agentstream.codec import encode_value
from agentstream.event import Message
from agentstream.runtime.executor import Executor
from agentstream.runtime.intake import interpret
from tests.runtime.helpers import Ticket, make_app


async def test_a_released_parked_event_waits_for_the_earlier_parked_one(db_url):
    app = make_app(db_url)
    ran: list[str] = []

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, key=lambda t: t.customer_id,
               ordering="strict", dead_letter="dlq")  # fmt: skip
    async def orders(ctx: Context, t: Ticket) -> str:
        if t.ticket_id == "T1":
            raise PoisonError("the first order is bad")
        ran.append(t.ticket_id)
        return t.ticket_id

    spec = app.select(["orders"])[0]
    store = app.backends().store()
    await store.open()
    executor = Executor(spec, store, None, app.middleware, owner="w", group="g", lease_s=5.0)

    def event(ticket_id: str, offset: int):  # type: ignore[no-untyped-def]
        value = encode_value(Ticket(ticket_id=ticket_id, customer_id="c1"))
        return interpret(spec, Message(topic="tickets", partition=0, offset=offset, key=b"c1",
                                       value=value))  # fmt: skip

    try:
        # Given T1 dead-lettered (its key blocked) and T2, T3 parked behind it, in that order
        assert (await executor.process(event("T1", 0))).outcome == "dead_lettered"
        assert (await executor.process(event("T2", 1))).outcome == "parked"
        assert (await executor.process(event("T3", 2))).outcome == "parked"
        # And the key released (the dead letter closed by an operator)
        assert await store.discard("orders", "T1")
        t2, t3 = await store.parked("orders", key="c1")
        assert (t2.event_id, t3.event_id) == ("T2", "T3")
        # When the later parked event reaches the executor first (T2 was held again)
        later = event("T3", 2)
        later.identity, later.key, later.parked_id = t3.event_id, t3.key, t3.id
        outcome = await executor.process(later)
        # Then it is held, and did not run before T2
        assert outcome.outcome == "parked" and ran == []
        # And once T2 has run, T3 runs after it
        first = event("T2", 1)
        first.identity, first.key, first.parked_id = t2.event_id, t2.key, t2.id
        assert (await executor.process(first)).outcome == "completed"
        assert (await executor.process(later)).outcome == "completed"
        assert ran == ["T2", "T3"]
    finally:
        await store.close()
