"""The same triage agent on agentstream (configured by the demo through the environment)."""

from __future__ import annotations

import asyncio
import os

from agentstream import App, Context, Retry, RuntimeConfig
from agentstream.demo.scenario import PROMPT, Ledger, Ticket, Triage
from agentstream.llm.openai_provider import OpenAIProvider

_env = os.environ.get
ledger = Ledger(_env("DEMO_LEDGER", "ledger.db"))

app = App(
    "demo",
    broker=_env("DEMO_DB", "sqlite:///agentstream-demo.db"),
    # The same OpenAI provider a user would point at a real endpoint; the demo runner points
    # it at the LLM simulator's HTTP server.
    llm=lambda: OpenAIProvider(
        base_url=_env("DEMO_LLM_URL", "http://127.0.0.1:8089/v1"),
        api_key=_env("OPENAI_API_KEY", "sim"),
    ),
    config=RuntimeConfig(
        lease_s=2.0, session_timeout_s=2.0, heartbeat_s=0.3, commit_interval_s=0.1
    ),
)


@app.agent(
    source="tickets",
    key=lambda t: t.customer_id,
    identity=lambda t: t.ticket_id,
    output="triage",
    dead_letter="tickets.dlq",
    concurrency=8,
    retry=Retry(attempts=10, backoff_initial=0.1, backoff_max=1.0),
    prompt_version="triage-v1",
    model=_env("DEMO_MODEL", "sim-1"),
)
async def triage(ctx: Context, ticket: Ticket) -> Triage:
    """Decide once; refund once; whatever the broker redelivers."""
    decision = await ctx.llm.parse(Triage, system=PROMPT, user=ticket.text)
    await asyncio.to_thread(ledger.record_decision, "agentstream", ticket.ticket_id, decision)
    if decision.refund:
        await ctx.effect(
            "refund",
            ledger.refund,
            "agentstream",
            ticket.ticket_id,
            decision.refund_cents,
            idempotency_key=ctx.key("refund"),
            reconcile=ledger.find_refund,
        )
    return decision
