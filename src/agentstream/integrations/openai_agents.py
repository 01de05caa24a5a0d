"""The OpenAI Agents SDK on agentstream: a model provider whose calls are journaled.

An unchanged ``agents.Agent`` runs inside a handler with ``Runner.run(agent, input,
run_config=run_config(...))``; every model call of the run (Responses API by default, or chat
completions) is a journaled model call of the running event, answered from the journal when the
event is resumed or redelivered::

    from agentstream.integrations import openai_agents as as_agents

    config = as_agents.run_config(base_url="http://localhost:8000/v1")

    @function_tool
    @agentstream.effect(reconcile=lookup_refund)
    async def refund(ctx: RunContextWrapper[Any], order_id: str, cents: int) -> str: ...

    @app.agent(source="tickets")
    async def triage(ctx, ticket):
        return (await Runner.run(agent, ticket.text, run_config=config)).final_output

Function tools decorated with :func:`agentstream.step` / :func:`agentstream.effect` that take
the SDK's context first are keyed by its tool call id. The SDK's own trace export is off in
:func:`run_config` (agentstream traces every call itself); pass ``tracing_disabled=False`` to
keep it. Requires ``pip install openai-agents``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentstream.integrations.clients import openai_client
from agentstream.integrations.transport import JournaledTransport

if TYPE_CHECKING:
    from agents import OpenAIProvider, RunConfig

__all__ = ["model_provider", "run_config"]


def model_provider(
    *,
    responses: bool = True,
    transport: JournaledTransport | None = None,
    **client_options: Any,
) -> OpenAIProvider:
    """An Agents SDK model provider on a journaled OpenAI client.

    Args:
        responses: Use the Responses API (the SDK's default) or chat completions.
        transport: The journaled transport (default: a new one).
        **client_options: ``openai.AsyncOpenAI`` options (``base_url``, ``api_key``...).
    """
    from agents import OpenAIProvider

    client = openai_client(transport=transport, **client_options)
    return OpenAIProvider(openai_client=client, use_responses=responses)


def run_config(
    *,
    responses: bool = True,
    transport: JournaledTransport | None = None,
    tracing_disabled: bool = True,
    **client_options: Any,
) -> RunConfig:
    """A ``RunConfig`` whose model calls are journaled (see :func:`model_provider`)."""
    from agents import RunConfig

    provider = model_provider(responses=responses, transport=transport, **client_options)
    return RunConfig(model_provider=provider, tracing_disabled=tracing_disabled)
