"""Recorded and shadow replay of events handled through the integrations (PydanticAI here)."""

from __future__ import annotations

from typing import Any

from pydantic_ai import Agent

from agentstream import App, Context
from agentstream.integrations import pydantic_ai
from agentstream.journal.sqlite import SqliteStore
from agentstream.replay import replay_recorded, replay_shadow
from agentstream.testing import run_agent
from tests.integrations.refund_world import Payments
from tests.integrations.test_frameworks import pydantic_agent
from tests.runtime.helpers import Ticket, make_app

EVENTS = 8


def register(app: App, agent: Agent[None, str], vip: Agent[None, str] | None = None) -> None:
    @app.agent(source="tickets", identity=lambda t: t.ticket_id)
    async def refunds(ctx: Context, t: Ticket) -> dict[str, Any]:
        chosen = vip if vip is not None and t.customer_id == "vip" else agent
        result = await chosen.run(t.text)
        return {"text": result.output}


async def test_recorded_replay_reproduces_sdk_agent_outputs_with_no_request_or_effect(
    db_url, db_path, simulator, transport
):
    sim = simulator(tool_call_rate=1.0)
    payments = Payments()
    model = pydantic_ai.openai_model("sim-1", base_url=sim.url, api_key="sim", transport=transport)
    live = make_app(db_url)
    register(live, pydantic_agent(model, payments))
    tickets = [
        Ticket(ticket_id=f"T{i}", customer_id="vip" if i % 4 == 0 else "c", text=f"refund {i}")
        for i in range(EVENTS)
    ]
    for t in tickets:
        assert (await run_agent(live, "refunds", t)).outcome == "completed"
    sent, refunds, lookups = len(sim.accepted()), dict(payments.refunds), payments.lookups

    store = SqliteStore(db_path)
    await store.open()
    try:
        report = await replay_recorded(live, "refunds", store)
        assert report.ok and report.model_calls == 0
        assert report.count("identical") == EVENTS
        assert (len(sim.accepted()), dict(payments.refunds)) == (sent, refunds)
        assert payments.lookups == lookups

        # A candidate with new instructions for VIP customers: only their requests change
        candidate = make_app(db_url)
        vip = Agent(model, instructions="Be generous with VIP refunds.")
        register(candidate, pydantic_agent(model, payments), vip)
        shadow = await replay_shadow(live, "refunds", candidate, store, run_id="run-1")
    finally:
        await store.close()
    by_id = {e["event_id"]: e for e in shadow.entries}
    vips = {t.ticket_id for t in tickets if t.customer_id == "vip"}
    fresh = {i for i, e in by_id.items() if e["candidate"]["fresh_calls"] > 0}
    assert fresh == vips  # the unchanged requests were answered from the journal
    assert shadow.summary["model_calls"] == len(sim.accepted()) - sent > 0
    assert dict(payments.refunds) == refunds  # shadow replay executed no effect
