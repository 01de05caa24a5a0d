"""Support-ticket triage: decide once, refund once, whatever the broker redelivers.

Run it on the embedded defaults (one SQLite file, no server) with the simulated model:

    agentstream produce tickets examples/tickets.jsonl --key customer_id --id ticket_id
    agentstream run examples.support_triage:app
    agentstream status examples.support_triage:app

Point it at real infrastructure with environment variables, no code change:

    AGENTSTREAM_BROKER=kafka://localhost:9092 AGENTSTREAM_STORE=postgresql://localhost/agents \
        agentstream run examples.support_triage:app
"""

from __future__ import annotations

import sqlite3
from typing import Literal

from pydantic import BaseModel, Field

from agentstream import App, Context, Retry
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig

PROMPT = (
    "You triage customer support tickets. Decide the category and priority, and whether the "
    "customer gets a refund (and how much, in cents)."
)


class Ticket(BaseModel):
    ticket_id: str
    customer_id: str
    text: str


class Triage(BaseModel):
    category: Literal["billing", "shipping", "account", "technical", "other"]
    priority: Literal["low", "normal", "high", "urgent"]
    refund: bool
    refund_cents: int = Field(ge=0, le=20_000)


class Payments:
    """Stands in for a payments API that accepts an idempotency key and can be queried by it."""

    def __init__(self, path: str = "payments.db") -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS refunds "
            "(idem_key TEXT PRIMARY KEY, customer TEXT, cents INT)"
        )

    def refund(self, customer_id: str, cents: int, idempotency_key: str) -> dict[str, str]:
        self.conn.execute(
            "INSERT OR IGNORE INTO refunds VALUES (?, ?, ?)", (idempotency_key, customer_id, cents)
        )
        return {"refund_id": idempotency_key}

    def lookup(self, idempotency_key: str) -> dict[str, str] | None:
        row = self.conn.execute(
            "SELECT idem_key FROM refunds WHERE idem_key = ?", (idempotency_key,)
        ).fetchone()
        return None if row is None else {"refund_id": row[0]}


payments = Payments()
app = App("support", llm=SimulatedProvider(SimulatorConfig(latency_ms=200)))


@app.agent(
    source="tickets",
    key=lambda t: t.customer_id,  # one customer's tickets in order, customers in parallel
    identity=lambda t: t.ticket_id,  # a producer retry of a ticket is the same event
    output="triage",
    dead_letter="tickets.dlq",
    concurrency=32,
    retry=Retry(attempts=5),
    prompt_version="triage-2026-11",
)
async def triage(ctx: Context, ticket: Ticket) -> Triage:
    decision = await ctx.llm.parse(Triage, system=PROMPT, user=ticket.text)
    if decision.refund:
        await ctx.effect(
            "refund",
            payments.refund,
            ticket.customer_id,
            decision.refund_cents,
            idempotency_key=ctx.key("refund"),
            reconcile=payments.lookup,
        )
    return decision
