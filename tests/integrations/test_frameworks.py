"""PydanticAI and the OpenAI Agents SDK, unchanged, journaled: replay after a failure."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from agents import Agent as SDKAgent
from agents import RunContextWrapper, Runner, function_tool
from pydantic_ai import Agent, RunContext

import agentstream
from agentstream import Context, ProviderUnavailable, Retry
from agentstream.integrations import openai_agents, pydantic_ai
from agentstream.testing import run_agent
from tests.integrations.refund_world import Payments
from tests.runtime.helpers import Ticket, make_app

NO_WAIT = Retry(attempts=3, backoff_initial=0.0, backoff_max=0.0)


def pydantic_agent(model: Any, payments: Payments) -> Agent[None, str]:
    agent = Agent(model, instructions="Help with refunds.")

    @agent.tool
    @agentstream.effect(reconcile=payments.lookup)
    async def refund(ctx: RunContext[None], order_id: str, cents: int) -> dict[str, Any]:
        """Refund an order."""
        await payments.pause()
        return payments.refund(agentstream.idempotency_key(), order_id, cents)

    @agent.tool
    @agentstream.step
    async def order_status(ctx: RunContext[None], order_id: str) -> str:
        """Look up an order."""
        payments.lookups += 1
        await payments.pause()
        return f"order {order_id} is late"

    return agent


def sdk_agent(payments: Payments) -> SDKAgent[Any]:
    @function_tool
    @agentstream.effect(reconcile=payments.lookup)
    async def refund(ctx: RunContextWrapper[Any], order_id: str, cents: int) -> dict[str, Any]:
        """Refund an order."""
        await payments.pause()
        return payments.refund(agentstream.idempotency_key(), order_id, cents)

    @function_tool
    @agentstream.step
    async def order_status(ctx: RunContextWrapper[Any], order_id: str) -> str:
        """Look up an order."""
        payments.lookups += 1
        await payments.pause()
        return f"order {order_id} is late"

    return SDKAgent(
        name="refunds",
        instructions="Help with refunds.",
        model="sim-1",
        tools=[refund, order_status],
    )


async def replay_after_a_failure(db_url, sim, payments, run, events: int = 1) -> Counter[str]:
    app = make_app(db_url)
    texts: dict[str, list[str]] = {}

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, retry=NO_WAIT)
    async def refunds(ctx: Context, t: Ticket) -> str:
        text = await run(t.text)
        texts.setdefault(t.ticket_id, []).append(text)
        if ctx.attempt == 1:
            raise ProviderUnavailable("crash after the agent ran")
        return text

    outcomes: Counter[str] = Counter()
    for i in range(events):
        ticket = Ticket(ticket_id=f"T{i}", customer_id="c", text=f"refund order {i}")
        assert (await run_agent(app, "refunds", ticket)).outcome == "retry"
        sent = len(sim.accepted())
        second = await run_agent(app, "refunds", ticket, offset=1)
        outcomes[second.outcome] += 1
        assert len(sim.accepted()) == sent, "the resumed run sent no model request"
        assert texts[ticket.ticket_id][0] == texts[ticket.ticket_id][1] == second.result
    return outcomes


@pytest.mark.parametrize("responses", [False, True], ids=["chat", "responses"])
async def test_a_pydantic_ai_agent_replays_its_model_calls_and_tools(
    db_url, simulator, transport, responses
):
    sim = simulator(tool_call_rate=1.0)
    payments = Payments()
    model = pydantic_ai.openai_model(
        "sim-1", responses=responses, base_url=sim.url, api_key="sim", transport=transport
    )
    agent = pydantic_agent(model, payments)

    async def run(text: str) -> str:
        return (await agent.run(text)).output

    assert await replay_after_a_failure(db_url, sim, payments, run) == {"completed": 1}
    assert len(sim.accepted()) >= 2  # a tool call, then the answer
    assert all(n == 1 for n in payments.refunds.values())


async def test_a_pydantic_ai_agent_on_claude_replays_too(db_url, simulator, transport):
    sim = simulator(tool_call_rate=1.0)
    payments = Payments()
    model = pydantic_ai.anthropic_model(
        "sim-1", base_url=sim.anthropic_url, api_key="sim", transport=transport
    )
    agent = pydantic_agent(model, payments)

    async def run(text: str) -> str:
        return (await agent.run(text)).output

    assert await replay_after_a_failure(db_url, sim, payments, run) == {"completed": 1}


@pytest.mark.parametrize("responses", [True, False], ids=["responses", "chat"])
async def test_an_agents_sdk_agent_replays_its_model_calls_and_tools(
    db_url, simulator, transport, responses
):
    sim = simulator(tool_call_rate=1.0)
    payments = Payments()
    agent = sdk_agent(payments)
    config = openai_agents.run_config(
        responses=responses, base_url=sim.url, api_key="sim", transport=transport
    )

    async def run(text: str) -> str:
        return str((await Runner.run(agent, text, run_config=config, max_turns=4)).final_output)

    assert await replay_after_a_failure(db_url, sim, payments, run) == {"completed": 1}
    paths = {c.body.get("input") is not None for c in sim.accepted()}
    assert paths == {responses}
    assert all(n == 1 for n in payments.refunds.values())


async def test_parallel_tool_calls_replay_without_non_determinism_across_100_events(
    db_url, simulator, transport
):
    # Each model answer asks for three tools at once, which PydanticAI runs concurrently; each
    # tool takes a random time, so they finish in a different order on every run.
    sim = simulator(tool_call_rate=1.0, tool_calls_per_answer=3, latency_ms=1.0)
    payments = Payments(max_latency_s=0.01)
    model = pydantic_ai.openai_model("sim-1", base_url=sim.url, api_key="sim", transport=transport)
    agent = pydantic_agent(model, payments)

    async def run(text: str) -> str:
        return (await agent.run(text)).output

    outcomes = await replay_after_a_failure(db_url, sim, payments, run, events=100)
    assert outcomes == {"completed": 100}
    assert payments.refunds and all(n == 1 for n in payments.refunds.values())
