"""The chaos agent written with an SDK or a framework, unchanged, on the journaled transport.

Same refund scenario as tests/apps/chaos_app.py, but the agent is plain ``openai.AsyncOpenAI``,
the Anthropic SDK, a PydanticAI agent or an OpenAI Agents SDK agent, talking over real HTTP to the
simulator the test runs (CHAOS_SIM_URL). Each event makes several model calls and may call a
``refund`` tool (an ``@agentstream.effect``) and an ``order_status`` tool (an
``@agentstream.step``); the decision says whether the refund tool ran.

CHAOS_FRAMEWORK   openai | anthropic | pydantic_ai | agents
Kill points: before_llm (handler start), after_llm (a model answer received, not yet
journaled), after_effect (inside the refund tool, after the money moved), after_tool (a tool's
result journaled), after_complete.
"""

# No ``from __future__ import annotations``: the framework tools are defined inside functions
# that import the framework, and their annotations must resolve there.
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from examples.refund_tools import ANTHROPIC_TOOLS as TOOLS_ANTHROPIC
from examples.refund_tools import OPENAI_TOOLS as TOOLS

import agentstream
from agentstream import App, Context
from agentstream.demo.scenario import Ticket
from agentstream.integrations import anthropic_client, openai_client
from agentstream.llm.admission import AdmissionControl
from agentstream.middleware import CompletedInput, LLMCallOutput, Middleware, StepOutput
from tests.apps.chaos_env import agent_options, runtime_config
from tests.chaos.world import World

env = os.environ.get
FRAMEWORK = env("CHAOS_FRAMEWORK", "openai")
SIM = env("CHAOS_SIM_URL", "http://127.0.0.1:1")
Runner = Callable[[str], Awaitable[tuple[bool, str]]]
world = World(env("CHAOS_WORLD", "world.db"), env("CHAOS_KILL_PLAN", ""))


class KillPoints(Middleware):
    """SIGKILLs the worker after a model answer, after a tool, and after completion."""

    async def after_llm_call(self, inp: LLMCallOutput) -> None:
        if inp.response is not None:
            world.maybe_kill("after_llm", inp.event.identity)

    async def after_step(self, inp: StepOutput) -> None:
        if inp.kind in ("effect", "step") and not inp.replayed:
            world.maybe_kill("after_tool", inp.event.identity)

    async def after_complete(self, inp: CompletedInput) -> None:
        world.maybe_kill("after_complete", inp.event.identity)


@agentstream.effect(name="refund", reconcile=world.lookup_refund)
async def do_refund(order_id: str, cents: int) -> dict[str, Any]:
    """The refund tool's effect: moves money once per event and tool call."""
    ticket = agentstream.current_context().identity
    key = agentstream.idempotency_key()
    return await asyncio.to_thread(world.refund, ticket, cents, key)


@agentstream.step(name="order_status")
async def order_status(order_id: str) -> str:
    """The order-status tool."""
    return f"order {order_id} is delayed"


async def run_tool(name: str, arguments: dict[str, Any]) -> Any:
    if name == "refund":
        return await do_refund(str(arguments["order_id"]), int(arguments["cents"]))
    return await order_status(str(arguments["order_id"]))


# -- plain AsyncOpenAI -----------------------------------------------------------------------

oa = openai_client(base_url=f"{SIM}/v1", api_key="sim")


async def plain_openai(text: str) -> tuple[bool, str]:
    messages: list[Any] = [
        {"role": "system", "content": "Help with refunds."},
        {"role": "user", "content": text},
    ]
    first = await oa.chat.completions.create(model="sim-1", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    message = first.choices[0].message
    refunded = False
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls or []:
        refunded |= call.function.name == "refund"  # type: ignore[union-attr]
        result = await run_tool(call.function.name, json.loads(call.function.arguments))  # type: ignore[union-attr]
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    stream = await oa.chat.completions.create(
        model="sim-1",
        messages=messages,
        tools=TOOLS,
        stream=True,  # type: ignore[arg-type]
    )
    text_out = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    return refunded, text_out


# -- Anthropic SDK ---------------------------------------------------------------------------

claude = anthropic_client(base_url=SIM, api_key="sim")


async def plain_anthropic(text: str) -> tuple[bool, str]:
    messages: list[Any] = [{"role": "user", "content": text}]
    first = await claude.messages.create(
        model="sim-1",
        max_tokens=300,
        system="Help with refunds.",
        messages=messages,
        tools=TOOLS_ANTHROPIC,  # type: ignore[arg-type]
    )
    messages.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
    results = []
    refunded = False
    for block in first.content:
        if block.type == "tool_use":
            refunded |= block.name == "refund"
            out = await run_tool(block.name, dict(block.input))  # type: ignore[arg-type]
            results.append(
                {"type": "tool_result", "tool_use_id": block.id, "content": json.dumps(out)}
            )
    if results:
        messages.append({"role": "user", "content": results})
    async with claude.messages.stream(
        model="sim-1",
        max_tokens=300,
        messages=messages,
        tools=TOOLS_ANTHROPIC,  # type: ignore[arg-type]
    ) as stream:
        final = await stream.get_final_message()
    return refunded, "".join(b.text for b in final.content if b.type == "text")


# -- PydanticAI and the Agents SDK (imported only by the worker that runs them) ---------------


def pydantic_ai_runner() -> Runner:
    from pydantic_ai import Agent, RunContext

    from agentstream.integrations import pydantic_ai

    agent = Agent(pydantic_ai.openai_model("sim-1", base_url=f"{SIM}/v1", api_key="sim"))

    @agent.tool
    @agentstream.effect(reconcile=world.lookup_refund)
    async def refund(ctx: RunContext[None], order_id: str, cents: int) -> dict[str, Any]:
        """Refund an order."""
        key = agentstream.idempotency_key()
        ticket = agentstream.current_context().identity
        return await asyncio.to_thread(world.refund, ticket, cents, key)

    @agent.tool
    @agentstream.step
    async def status(ctx: RunContext[None], order_id: str) -> str:
        """Look up an order."""
        return f"order {order_id} is delayed"

    async def run(text: str) -> tuple[bool, str]:
        result = await agent.run(text)
        refunded = any(
            getattr(part, "tool_name", None) == "refund" and part.part_kind == "tool-call"
            for message in result.all_messages()
            for part in message.parts
        )
        return refunded, result.output

    return run


def agents_sdk_runner() -> Runner:
    from agents import Agent, RunContextWrapper, function_tool
    from agents import Runner as SDKRunner

    from agentstream.integrations import openai_agents

    @function_tool(name_override="refund")
    @agentstream.effect(reconcile=world.lookup_refund)
    async def sdk_refund(ctx: RunContextWrapper[Any], order_id: str, cents: int) -> dict[str, Any]:
        """Refund an order."""
        key = agentstream.idempotency_key()
        ticket = agentstream.current_context().identity
        return await asyncio.to_thread(world.refund, ticket, cents, key)

    @function_tool(name_override="order_status")
    @agentstream.step
    async def sdk_status(ctx: RunContextWrapper[Any], order_id: str) -> str:
        """Look up an order."""
        return f"order {order_id} is delayed"

    agent: Agent[Any] = Agent(
        name="refunds",
        instructions="Help with refunds.",
        model="sim-1",
        tools=[sdk_refund, sdk_status],
    )
    config = openai_agents.run_config(base_url=f"{SIM}/v1", api_key="sim")

    async def run(text: str) -> tuple[bool, str]:
        result = await SDKRunner.run(agent, text, run_config=config, max_turns=4)
        refunded = any(
            item.type == "tool_call_item" and getattr(item.raw_item, "name", None) == "refund"
            for item in result.new_items
        )
        return refunded, str(result.final_output)

    return run


def runner() -> Runner:
    if FRAMEWORK == "pydantic_ai":
        return pydantic_ai_runner()
    if FRAMEWORK == "agents":
        return agents_sdk_runner()
    return plain_anthropic if FRAMEWORK == "anthropic" else plain_openai


run_agent = runner()

app = App(
    "chaos",
    broker=env("CHAOS_BROKER"),
    store=env("CHAOS_STORE"),
    admission=AdmissionControl(),
    middleware=[KillPoints()],
    config=runtime_config(),
)


@app.agent(**agent_options())
async def triage(ctx: Context, ticket: Ticket) -> dict[str, Any]:
    world.maybe_kill("before_llm", ticket.ticket_id)
    refunded, text = await run_agent(ticket.text)
    decision = {"refund": refunded, "text": text}
    await asyncio.to_thread(
        world.observe, ticket.ticket_id, ticket.customer_id, ticket.seq, json.dumps(decision)
    )
    return decision
