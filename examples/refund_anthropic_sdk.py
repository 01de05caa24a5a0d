"""The refund agent written with the Anthropic SDK (``anthropic.AsyncAnthropic``), journaled.

Both Messages calls (the second one streamed with ``messages.stream``) are journaled model calls;
the refund tool is an intent-ledger effect that happens once.

    python examples/refund_anthropic_sdk.py       # against the LLM simulator
    agentstream run examples.refund_anthropic_sdk:app
"""

from __future__ import annotations

import asyncio
from typing import Any

from agentstream import App, Context
from agentstream.integrations import anthropic_client
from examples.refund_common import INSTRUCTIONS, Ticket, demo, model_url, order_status, refund
from examples.refund_tools import ANTHROPIC_TOOLS as TOOLS

client = anthropic_client(base_url=model_url("ANTHROPIC_BASE_URL", anthropic=True), api_key="sim")
app = App("refund-anthropic", broker="sqlite:///refund_anthropic.db")


@app.agent(source="tickets", identity=lambda t: t.ticket_id, output="answers")
async def refunds(ctx: Context, ticket: Ticket) -> dict[str, Any]:
    messages: list[Any] = [{"role": "user", "content": ticket.text}]
    first = await client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=500,
        system=INSTRUCTIONS,
        messages=messages,
        tools=TOOLS,
    )
    messages.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
    results, done = [], []
    for block in first.content:
        if block.type == "tool_use":
            args: dict[str, Any] = dict(block.input)  # type: ignore[arg-type]
            out = await (refund(**args) if block.name == "refund" else order_status(**args))
            done.append({"tool": block.name, "result": out})
            results.append({"type": "tool_result", "tool_use_id": block.id, "content": str(out)})
    if results:
        messages.append({"role": "user", "content": results})
    async with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=500,
        system=INSTRUCTIONS,
        messages=messages,
        tools=TOOLS,
    ) as stream:
        final = await stream.get_final_message()
    answer = "".join(b.text for b in final.content if b.type == "text")
    return {"tools": done, "answer": answer}


if __name__ == "__main__":
    asyncio.run(demo(app))
