"""A completed event is never handled again; an interrupted one resumes from its steps."""

from __future__ import annotations

import dataclasses

from agentstream import Context, ProviderUnavailable, Retry
from agentstream.journal.sqlite import SqliteStore
from agentstream.outputs import EVENT_ID_HEADER
from agentstream.testing import AppHarness
from tests.runtime.helpers import Decision, Outcomes, Ticket, make_app, simulated, tickets


async def test_a_duplicate_gets_the_recorded_decision_without_a_handler_or_model_call(
    db_url, db_path
):
    # Given an agent and a stream where every ticket was produced twice (a producer retry)
    provider = simulated()
    outcomes = Outcomes()
    app = make_app(db_url, provider, middleware=[outcomes])
    handled: list[str] = []

    @app.agent(
        source="tickets",
        key=lambda t: t.customer_id,
        identity=lambda t: t.ticket_id,
        output="decisions",
    )
    async def triage(ctx: Context, t: Ticket) -> Decision:
        handled.append(t.ticket_id)
        return await ctx.llm.parse(Decision, user=t.text)

    batch = tickets(30)
    async with AppHarness(app) as h:
        # When the originals and then the duplicates are delivered
        await h.produce("tickets", batch, key=lambda t: t.customer_id)
        await h.wait_drained()
        await h.produce("tickets", batch, key=lambda t: t.customer_id)
        await h.wait_drained()
        outputs = h.read("decisions")
    # Then each ticket ran once, called the model once, and has exactly one output
    assert sorted(handled) == sorted(t.ticket_id for t in batch)
    assert provider.simulator.stats["requests"] == 30
    assert outcomes.counts["completed"] == 30 and outcomes.counts["duplicate"] == 30
    assert sorted(m.header(EVENT_ID_HEADER).decode() for m in outputs) == sorted(
        t.ticket_id for t in batch
    )
    store = SqliteStore(db_path)
    await store.open()
    try:
        record = await store.get_event("triage", "T0007")
        assert record is not None and record.deliveries == 2
    finally:
        await store.close()


async def test_an_event_interrupted_after_its_llm_call_resumes_with_the_recorded_answer(db_url):
    # Given an agent whose first attempt fails after the model answered
    provider = simulated()
    app = make_app(db_url, provider)
    seen: list[tuple[int, str]] = []

    @app.agent(
        source="tickets",
        identity=lambda t: t.ticket_id,
        output="decisions",
        retry=Retry(attempts=3, backoff_initial=0.01),
    )
    async def triage(ctx: Context, t: Ticket) -> Decision:
        decision = await ctx.llm.parse(Decision, user=t.text)
        seen.append((ctx.attempt, decision.model_dump_json()))
        if ctx.attempt == 1:
            raise ProviderUnavailable("downstream 503 after the decision")
        return decision

    async with AppHarness(app) as h:
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c1")])
        await h.wait_drained()
        [output] = h.read("decisions")
    # Then the second attempt saw the same decision, from the journal, with no second model call
    assert [a for a, _ in seen] == [1, 2]
    assert seen[0][1] == seen[1][1]
    assert provider.simulator.stats["requests"] == 1
    assert Decision.model_validate_json(output.value).model_dump_json() == seen[0][1]


async def test_a_completed_event_replayed_after_a_restart_is_not_handled_again(db_url):
    provider = simulated()
    app = make_app(db_url, provider)
    calls: list[str] = []

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, output="decisions")
    async def triage(ctx: Context, t: Ticket) -> Decision:
        calls.append(t.ticket_id)
        return await ctx.llm.parse(Decision, user=t.text)

    async with AppHarness(app) as h:
        await h.produce("tickets", tickets(10))
        await h.wait_drained()
    # A second deployment with a new consumer group re-reads the whole topic (a replay)
    app.agents["triage"] = dataclasses.replace(app.agents["triage"], group="test.replayed")
    async with AppHarness(app) as h:
        await h.wait_drained()
        outputs = h.read("decisions")
    assert len(calls) == 10
    assert provider.simulator.stats["requests"] == 10
    assert len(outputs) == 10
