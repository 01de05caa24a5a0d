"""Ticket triage over HTTP, under a provider's rate limits and a spend budget.

The agent talks to a chat-completions endpoint through the OpenAI provider (or to Claude through
the Anthropic provider): a tool call to look the order up, then a validated structured answer.
Admission control keeps it inside the provider's requests- and tokens-per-minute limits (shared
by every worker process through the journal), absorbs any 429 by waiting instead of failing the
event, and pauses consumption while the agent's hourly budget is spent.

Against the LLM simulator (an OpenAI-compatible server with real rate limits)::

    agentstream simulate-llm --rpm 60 --tpm 20000 --latency-ms 400 &
    agentstream produce tickets examples/tickets.jsonl --key customer_id --id ticket_id
    agentstream run examples.llm_gateway:app --workers 2

Against a real endpoint, change only settings::

    OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... LLM_MODEL=gpt-4.1-mini \\
        agentstream run examples.llm_gateway:app
    OPENAI_BASE_URL=http://localhost:11434/v1 LLM_MODEL=llama3.1 agentstream run ...   # Ollama
    LLM_PROVIDER=anthropic ANTHROPIC_API_KEY=... LLM_MODEL=claude-sonnet-4-6 agentstream run ...
"""

from __future__ import annotations

import json
import os
from typing import Literal

from pydantic import BaseModel, Field

from agentstream import App, Budget, Context
from agentstream.llm.admission import AdmissionControl, ModelLimits, SpendLimit
from agentstream.llm.base import LLMProvider

MODEL = os.environ.get("LLM_MODEL", "sim-1")
PROMPT = (
    "You triage customer support tickets. Look the customer's latest order up when the ticket "
    "is about an order, then decide the category, the priority and whether to refund."
)
LOOKUP_ORDER = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "The shipping state of the customer's latest order.",
        "parameters": {
            "type": "object",
            "properties": {"customer_id": {"type": "string"}},
            "required": ["customer_id"],
        },
    },
}


class Ticket(BaseModel):
    ticket_id: str
    customer_id: str
    text: str


class Triage(BaseModel):
    category: Literal["billing", "shipping", "account", "technical", "other"]
    priority: Literal["low", "normal", "high", "urgent"]
    refund: bool
    summary: str = Field(max_length=200)


def provider() -> LLMProvider:
    """The provider chosen by settings (called once per worker process)."""
    if os.environ.get("LLM_PROVIDER") == "anthropic":
        from agentstream.llm.anthropic_provider import AnthropicProvider

        return AnthropicProvider()
    from agentstream.llm.openai_provider import OpenAIProvider

    return OpenAIProvider(
        base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8089/v1"),
        api_key=os.environ.get("OPENAI_API_KEY", "simulator"),
    )


def lookup_order(customer_id: str) -> str:
    """Stands in for an order service."""
    return json.dumps({"customer_id": customer_id, "state": "in transit", "days_late": 3})


app = App(
    "gateway",
    llm=provider,
    admission=AdmissionControl(
        {MODEL: ModelLimits(rpm=float(os.environ.get("LLM_RPM", "60")))},  # TPM from headers
        spend={"triage": SpendLimit(usd=float(os.environ.get("LLM_USD_PER_HOUR", "5")))},
    ),
)


@app.agent(
    source="tickets",
    key=lambda t: t.customer_id,
    identity=lambda t: t.ticket_id,
    output="triage",
    dead_letter="tickets.dlq",
    model=MODEL,
    prompt_version="gateway-1",
    budget=Budget(max_llm_calls=6, max_cost_usd=0.05),
)
async def triage(ctx: Context, ticket: Ticket) -> Triage:
    conversation: list[dict[str, object]] = [
        {"role": "system", "content": PROMPT},
        {"role": "user", "content": f"Customer {ticket.customer_id}: {ticket.text}"},
    ]
    reply = await ctx.llm(messages=conversation, tools=[LOOKUP_ORDER], name="investigate")
    if reply.tool_calls:
        conversation.append(reply.message())
        for call in reply.tool_calls:  # the agent uses its own customer id, not the model's
            result = await ctx.step("lookup_order", lookup_order, ticket.customer_id)
            conversation.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return await ctx.llm.parse(Triage, messages=conversation, name="decide")
