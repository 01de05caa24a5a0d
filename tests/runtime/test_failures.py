"""Bad input and failing agents: clear dead letters, nothing lost, the consumer keeps going."""

from __future__ import annotations

import base64
import json
import struct

from agentstream import Budget, Context, FailureClass, Retry
from agentstream.event import Message
from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from tests.runtime.helpers import Decision, Outcomes, Ticket, make_app, simulated, tickets


def header(m: Message, name: str) -> bytes:
    value = m.header(name)
    assert value is not None, f"missing header {name}"
    return value


async def dead_letters(db_path, agent):
    store = SqliteStore(db_path)
    await store.open()
    try:
        return {d.event_id: d for d in await store.dead_letters(agent=agent, limit=1000)}, (
            await store.counts(agent)
        )
    finally:
        await store.close()


async def test_bad_payloads_and_agent_errors_are_dead_lettered_while_the_rest_completes(
    db_url, db_path
):
    # Given malformed JSON, a payload failing the input model, an oversized payload and a ticket
    # that makes the agent raise, mixed into a stream of good tickets on the same keys
    outcomes = Outcomes()
    app = make_app(db_url, middleware=[outcomes])

    @app.agent(
        source="tickets",
        key=lambda t: t.customer_id,
        dead_letter="tickets.dlq",
        output="out",
        max_payload_bytes=2_000,
    )
    async def strict(ctx: Context, t: Ticket) -> dict:
        if t.text == "boom":
            raise ValueError("agent bug: cannot triage 'boom'")
        return {"ok": t.ticket_id}

    good = tickets(30, keys=3)
    bad = [
        b'{"ticket_id": "broken", "customer_id": ',
        json.dumps({"ticket_id": "X1", "customer": "c0"}).encode(),
        json.dumps({"ticket_id": "X2", "customer_id": "c1", "text": "x" * 5000}).encode(),
        Ticket(ticket_id="X3", customer_id="c2", text="boom").model_dump_json().encode(),
    ]
    stream = [*good[:10], *bad, *good[10:]]
    async with AppHarness(app) as h:
        await h.produce(
            "tickets", stream, key=lambda v: "c0", headers=lambda v: {"id": f"id-{stream.index(v)}"}
        )
        await h.wait_drained()
        dlq = h.read("tickets.dlq")
        outputs = h.read("out")
    # Then the good tickets all completed, in spite of sharing a key with the bad ones
    assert len(outputs) == 30
    letters, counts = await dead_letters(db_path, "strict")
    assert counts["completed"] == 30 and counts["dead"] == 4 and counts["claimed"] == 0
    classes = {eid: d.failure_class for eid, d in letters.items()}
    assert classes == {
        "id-10": FailureClass.POISON,
        "id-11": FailureClass.POISON,
        "id-12": FailureClass.POISON,
        "id-13": FailureClass.AGENT_ERROR,
    }
    messages = {eid: d.envelope["exception"]["message"] for eid, d in letters.items()}
    assert "not valid JSON" in messages["id-10"]
    assert "does not match Ticket" in messages["id-11"] and "customer_id" in messages["id-11"]
    assert "exceeds the agent's limit of 2000 bytes" in messages["id-12"]
    assert "agent bug" in messages["id-13"]
    assert "ValueError" in letters["id-13"].envelope["exception"]["traceback"]
    # And each dead letter carries the original bytes and where they came from
    for eid, raw in zip(("id-10", "id-11", "id-12", "id-13"), bad, strict=True):
        env = letters[eid].envelope
        assert base64.b64decode(env["original"]["value_b64"]) == raw
        assert env["source"]["topic"] == "tickets" and env["consumer_group"] == "test.strict"
        assert env["attempts"] == 1 and env["agent"] == "strict"
    # And the DLQ topic has the untouched bytes with Kafka Connect and Spring style headers
    assert sorted(m.value for m in dlq) == sorted(bad)
    for m in dlq:
        source_offset = int(header(m, "__connect.errors.offset"))
        assert struct.unpack(">q", header(m, "kafka_dlt-original-offset"))[0] == source_offset
        assert header(m, "__connect.errors.topic") == b"tickets"
        assert header(m, "agentstream-dlq-failure-class") in (b"poison", b"agent_error")


async def test_transient_failures_are_retried_with_durable_attempts_then_dead_lettered(
    db_url, db_path
):
    outcomes = Outcomes()
    app = make_app(db_url, middleware=[outcomes])
    attempts: list[int] = []

    @app.agent(
        source="tickets",
        identity=lambda t: t.ticket_id,
        dead_letter="dlq",
        retry=Retry(attempts=3, backoff_initial=0.02, backoff_max=0.05),
    )
    async def flaky(ctx: Context, t: Ticket) -> None:
        attempts.append(ctx.attempt)
        raise TimeoutError("the upstream read timed out")

    async with AppHarness(app) as h:
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c")])
        await h.wait_drained()
    assert attempts == [1, 2, 3]
    assert outcomes.counts["retry"] == 2 and outcomes.counts["dead_lettered"] == 1
    letters, _ = await dead_letters(db_path, "flaky")
    env = letters["T1"].envelope
    assert env["failure_class"] == FailureClass.ATTEMPTS_EXHAUSTED
    assert [f["failure_class"] for f in env["failures"]] == ["transient"] * 3
    assert env["first_failure_at"] < env["last_failure_at"]


async def test_a_semantic_failure_is_re_asked_then_dead_lettered_with_every_attempt(
    db_url, db_path
):
    # Given a model that never produces valid output for the schema
    provider = simulated(invalid_json_rate=1.0)
    app = make_app(db_url, provider)

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, dead_letter="dlq")
    async def parse(ctx: Context, t: Ticket) -> Decision:
        return await ctx.llm.parse(Decision, user=t.text, retries=2)

    async with AppHarness(app) as h:
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c")])
        await h.wait_drained()
    assert provider.simulator.stats["requests"] == 3
    letters, _ = await dead_letters(db_path, "parse")
    env = letters["T1"].envelope
    assert env["failure_class"] == FailureClass.SEMANTIC
    assert len(env["semantic_attempts"]) == 3 and len(env["llm_attempts"]) == 3
    assert [a["output"] for a in env["llm_attempts"]] == env["semantic_attempts"]
    assert env["tokens"] > 0 and env["cost_usd"] > 0


async def test_a_runaway_loop_is_stopped_by_the_per_event_call_ceiling(db_url, db_path):
    app = make_app(db_url)

    @app.agent(
        source="tickets",
        identity=lambda t: t.ticket_id,
        dead_letter="dlq",
        budget=Budget(max_llm_calls=5),
    )
    async def loop(ctx: Context, t: Ticket) -> None:
        while True:
            await ctx.llm(user="think harder")

    async with AppHarness(app) as h:
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c")])
        await h.wait_drained()
    letters, _ = await dead_letters(db_path, "loop")
    env = letters["T1"].envelope
    assert env["failure_class"] == FailureClass.BUDGET_EXCEEDED
    assert len(env["llm_attempts"]) == 5
