"""The refund agent written with ``openai.AsyncOpenAI``, journaled unchanged.

Every chat-completions call (the last one streamed) goes through agentstream's journaled
transport: a redelivered or resumed ticket gets the recorded answers back, byte for byte, and
the refund tool is an intent-ledger effect that happens once.

    python examples/refund_openai_sdk.py          # against the LLM simulator
    agentstream run examples.refund_openai_sdk:app
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from agentstream import App, Context
from agentstream.integrations import openai_client
from examples.refund_common import INSTRUCTIONS, Ticket, demo, model_url, order_status, refund
from examples.refund_tools import OPENAI_TOOLS as TOOLS

client = openai_client(base_url=model_url("OPENAI_BASE_URL"), api_key="sim")
app = App("refund-openai", broker="sqlite:///refund_openai.db")


@app.agent(source="tickets", identity=lambda t: t.ticket_id, output="answers")
async def refunds(ctx: Context, ticket: Ticket) -> dict[str, Any]:
    messages: list[Any] = [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": ticket.text},
    ]
    reply = await client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=TOOLS
    )
    message = reply.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    done: list[Any] = []
    for call in message.tool_calls or []:
        args = json.loads(call.function.arguments)  # type: ignore[union-attr]
        name = call.function.name  # type: ignore[union-attr]
        result = await (refund(**args) if name == "refund" else order_status(**args))
        done.append({"tool": name, "result": result})
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True
    )
    answer = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    return {"tools": done, "answer": answer}


if __name__ == "__main__":
    asyncio.run(demo(app))
