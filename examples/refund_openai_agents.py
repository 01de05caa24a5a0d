"""The refund agent as an unchanged OpenAI Agents SDK ``Agent``, journaled.

``Runner.run`` gets a ``RunConfig`` whose model provider is on agentstream's journaled transport
(``agentstream.integrations.openai_agents.run_config``); the Responses API is used by default,
``responses=False`` switches to chat completions. The function tools are ``@agentstream.effect``
and ``@agentstream.step`` functions keyed by the SDK's tool call id. Needs
``pip install "agentstream[openai-agents]"``.

    python examples/refund_openai_agents.py        # against the LLM simulator
    agentstream run examples.refund_openai_agents:app
"""

from __future__ import annotations

import asyncio
from typing import Any

from agents import Agent, RunContextWrapper, Runner, function_tool

import agentstream
from agentstream import App, Context
from agentstream.integrations import openai_agents
from examples.refund_common import INSTRUCTIONS, Ticket, demo, model_url, payments


@function_tool
@agentstream.effect(reconcile=payments.lookup)
async def refund(ctx: RunContextWrapper[Any], order_id: str, cents: int) -> dict[str, Any]:
    """Refund an order (cents between 1 and 5000)."""
    key = agentstream.idempotency_key()
    return await asyncio.to_thread(payments.refund, order_id, cents, key)


@function_tool
@agentstream.step
async def order_status(ctx: RunContextWrapper[Any], order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id} is 14 days late"


agent: Agent[Any] = Agent(
    name="refunds", instructions=INSTRUCTIONS, model="gpt-4o-mini", tools=[refund, order_status]
)
config = openai_agents.run_config(base_url=model_url("OPENAI_BASE_URL"), api_key="sim")
app = App("refund-openai-agents", broker="sqlite:///refund_openai_agents.db")


@app.agent(source="tickets", identity=lambda t: t.ticket_id, output="answers")
async def refunds(ctx: Context, ticket: Ticket) -> dict[str, Any]:
    result = await Runner.run(agent, ticket.text, run_config=config, max_turns=6)
    return {"answer": str(result.final_output), "items": len(result.new_items)}


if __name__ == "__main__":
    asyncio.run(demo(app))
