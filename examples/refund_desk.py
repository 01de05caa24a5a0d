"""Refund desk: route tickets with a tool call, a journaled lookup, a structured decision and a
refund effect; the example whose recorded history CI replays.

Run it on the embedded log (one SQLite file, no server) with the seeded LLM simulator::

    agentstream produce tickets examples/refund_desk_tickets.jsonl --key customer --id id
    agentstream run examples.refund_desk:app

Inspect and replay what it did::

    agentstream journal list --agent triage
    agentstream replay examples.refund_desk:app --agent triage --mode recorded
    agentstream replay examples.refund_desk:app --agent triage --mode shadow \\
        --candidate examples.refund_desk_candidate:app --html report.html
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

import agentstream
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig

PROMPT = (
    "You triage customer support tickets. First look up the order the ticket is about, then "
    "choose a queue and a priority, and a refund in cents when one is due."
)

LOOKUP_ORDER = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order by its id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "maxLength": 12}},
            "required": ["order_id"],
        },
    },
}


class Ticket(BaseModel):
    id: str
    customer: str
    tier: Literal["standard", "enterprise"] = "standard"
    text: str


class Triage(BaseModel):
    queue: Literal["billing", "shipping", "technical", "general"]
    priority: Literal["low", "normal", "high"]
    refund_cents: int = Field(ge=0, le=5000)


def lookup_order(order_id: str) -> dict[str, object]:
    """A stand-in order database: a deterministic order for any id."""
    digest = hashlib.sha256(order_id.encode()).digest()
    return {"order_id": order_id, "total_cents": 500 + digest[0] * 20, "shipped": digest[1] > 80}


def refund(customer: str, cents: int, idempotency_key: str) -> dict[str, object]:
    """A stand-in payments API (a real one deduplicates on the idempotency key)."""
    return {"customer": customer, "refunded_cents": cents, "key": idempotency_key}


def make_app(prompt_for: Callable[[Ticket], str], *, seed: int = 42) -> agentstream.App:
    """The support app, with the system prompt chosen per ticket."""
    app = agentstream.App(
        "refunds",
        llm=lambda: SimulatedProvider(SimulatorConfig(seed=seed, latency_ms=5)),
    )

    @app.agent(
        source="tickets",
        key=lambda t: t.customer,
        identity=lambda t: t.id,
        output="triage",
        dead_letter="tickets.dlq",
        prompt_version="v1",
    )
    async def triage(ctx: agentstream.Context, ticket: Ticket) -> Triage:
        system = prompt_for(ticket)
        plan = await ctx.llm(
            system=system,
            user=ticket.text,
            tools=[LOOKUP_ORDER],
            tool_choice="required",
            name="plan",
        )
        order_id = json.loads(plan.tool_calls[0].arguments)["order_id"] if plan.tool_calls else ""
        order = await ctx.step("lookup_order", lookup_order, order_id)
        decision = await ctx.llm.parse(
            Triage, system=system, user=f"{ticket.text}\nOrder: {json.dumps(order)}"
        )
        if decision.refund_cents:
            await ctx.effect(
                "refund",
                refund,
                ticket.customer,
                decision.refund_cents,
                idempotency_key=ctx.key("refund"),
            )
        return decision

    return app


app = make_app(lambda ticket: PROMPT)
