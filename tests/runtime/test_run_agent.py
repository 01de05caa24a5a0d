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
