"""PydanticAI on agentstream: models whose requests are journaled, tools as steps and effects.

An unchanged ``pydantic_ai.Agent`` runs inside a handler; give it a model built here and its
model requests (every turn of the agent loop, streamed or not) are journaled model calls of the
running event, answered from the journal when the event is resumed or redelivered::

    from agentstream.integrations import pydantic_ai as as_pai

    agent = Agent(as_pai.openai_model("gpt-4o-mini"), output_type=Decision)

    @agent.tool
    @agentstream.effect(reconcile=lookup_refund)
    async def refund(ctx: RunContext[None], order_id: str, cents: int) -> str: ...

    @app.agent(source="tickets")
    async def triage(ctx, ticket):
        return (await agent.run(ticket.text)).output

Journaling happens at the HTTP transport, below PydanticAI's model classes, so every model
class built on the official SDKs works the same way (chat completions, the Responses API,
Anthropic). Tools decorated with :func:`agentstream.step` / :func:`agentstream.effect` are keyed
by PydanticAI's tool call id, so its parallel tool execution replays in any order. Requires
``pip install "pydantic-ai-slim[openai]"`` (``[anthropic]`` for Claude models).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentstream.integrations.clients import anthropic_client, openai_client
from agentstream.integrations.transport import JournaledTransport

if TYPE_CHECKING:
    from pydantic_ai.models import Model

__all__ = ["anthropic_model", "openai_model"]


def openai_model(
    model_name: str,
    *,
    responses: bool = False,
    transport: JournaledTransport | None = None,
    **client_options: Any,
) -> Model:
    """A PydanticAI OpenAI model whose requests are journaled.

    Args:
        model_name: The model (``gpt-4o-mini``...).
        responses: Use the Responses API (``OpenAIResponsesModel``) instead of chat
            completions (``OpenAIChatModel``).
        transport: The journaled transport (default: a new one).
        **client_options: ``openai.AsyncOpenAI`` options (``base_url``, ``api_key``...).
    """
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(openai_client=openai_client(transport=transport, **client_options))
    if responses:
        return OpenAIResponsesModel(model_name, provider=provider)
    return OpenAIChatModel(model_name, provider=provider)


def anthropic_model(
    model_name: str, *, transport: JournaledTransport | None = None, **client_options: Any
) -> Model:
    """A PydanticAI Anthropic model whose requests are journaled (options as for OpenAI)."""
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    client = anthropic_client(transport=transport, **client_options)
    return AnthropicModel(model_name, provider=AnthropicProvider(anthropic_client=client))
