"""The refund agent as an unchanged PydanticAI ``Agent``, journaled.

The agent's model requests go through agentstream's journaled transport
(``agentstream.integrations.pydantic_ai.openai_model``); its tools are ``@agentstream.effect`` and
``@agentstream.step`` functions, keyed by PydanticAI's tool call id, so parallel tool calls replay
in any order. Needs ``pip install "agentstream[pydantic-ai]"``.

    python examples/refund_pydantic_ai.py          # against the LLM simulator
    agentstream run examples.refund_pydantic_ai:app
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic_ai import Agent, RunContext

import agentstream
from agentstream import App, Context
from agentstream.integrations import pydantic_ai
from examples.refund_common import INSTRUCTIONS, Ticket, demo, model_url, payments

model = pydantic_ai.openai_model(
    "gpt-4o-mini", base_url=model_url("OPENAI_BASE_URL"), api_key="sim"
)
agent = Agent(model, instructions=INSTRUCTIONS)


@agent.tool
@agentstream.effect(reconcile=payments.lookup)
async def refund(ctx: RunContext[None], order_id: str, cents: int) -> dict[str, Any]:
    """Refund an order (cents between 1 and 5000)."""
    key = agentstream.idempotency_key()
    return await asyncio.to_thread(payments.refund, order_id, cents, key)


@agent.tool
@agentstream.step
async def order_status(ctx: RunContext[None], order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id} is 14 days late"


app = App("refund-pydantic-ai", broker="sqlite:///refund_pydantic_ai.db")


@app.agent(source="tickets", identity=lambda t: t.ticket_id, output="answers")
async def refunds(ctx: Context, ticket: Ticket) -> dict[str, Any]:
    result = await agent.run(ticket.text)
    return {"answer": result.output, "turns": len(result.all_messages())}


if __name__ == "__main__":
    asyncio.run(demo(app))
