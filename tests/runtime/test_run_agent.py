"""run_agent: one delivery through the real executor, for unit tests of an agent."""

from __future__ import annotations

from agentstream import Context
from agentstream.testing import run_agent
from tests.runtime.helpers import Decision, Ticket, make_app, simulated


async def test_run_agent_records_the_decision_and_answers_the_duplicate_from_the_journal(db_url):
    provider = simulated()
    app = make_app(db_url, provider)

    @app.agent(source="tickets", identity=lambda t: t.ticket_id)
    async def triage(ctx: Context, t: Ticket) -> Decision:
        return await ctx.llm.parse(Decision, user=t.text)

    ticket = Ticket(ticket_id="T1", customer_id="c1")
    first = await run_agent(app, "triage", ticket)
    again = await run_agent(app, "triage", ticket, offset=7)
    assert (first.outcome, first.state) == ("completed", "completed")
    assert Decision.model_validate(first.result)
    assert [s.kind for s in first.steps] == ["llm"]
    assert again.outcome == "duplicate" and again.result == first.result
    assert provider.simulator.stats["requests"] == 1


async def test_run_agent_shows_the_dead_letter_of_bad_input(db_url):
    app = make_app(db_url)

    @app.agent(source="tickets")
    async def strict(ctx: Context, t: Ticket) -> None:
        return None

    run = await run_agent(app, "strict", b"{not json", headers={"id": "bad-1"})
    assert run.outcome == "dead_lettered" and run.state == "dead"
    assert run.dead_letter is not None and run.dead_letter["failure_class"] == "poison"


async def test_run_agent_keeps_the_claim_of_a_run_longer_than_the_lease(db_url):
    # Given an agent whose run outlasts its 0.6 s lease (a slow framework agent, a busy machine)
    import asyncio

    from agentstream import RuntimeConfig

    app = make_app(db_url)
    app.config = RuntimeConfig(lease_s=0.6, session_timeout_s=2.0, heartbeat_s=0.2)

    @app.agent(source="tickets", identity=lambda t: t.ticket_id)
    async def slow(ctx: Context, t: Ticket) -> str:
        await asyncio.sleep(1.5)
        return await ctx.step("after", lambda: "done")

    # When it runs through run_agent
    run = await run_agent(app, "slow", Ticket(ticket_id="T1", customer_id="c1"))
    # Then its lease was renewed as in a worker, and the run completed
    assert (run.outcome, run.result) == ("completed", "done")
