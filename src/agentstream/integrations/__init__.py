"""Agent code written for the OpenAI and Anthropic SDKs and agent frameworks, journaled unchanged.

* :class:`JournaledTransport`: an httpx transport turning the SDKs' model-API requests into
  journaled model calls of the running event;
* :func:`openai_client`, :func:`anthropic_client`, :func:`http_client`: SDK clients on it;
* :func:`step`, :func:`effect` (also ``agentstream.step`` / ``agentstream.effect``): tool
  decorators with journal semantics;
* :mod:`agentstream.integrations.pydantic_ai` and :mod:`agentstream.integrations.openai_agents`:
  PydanticAI models and an Agents SDK model provider on the journaled transport (optional
  extras ``pydantic-ai``, ``openai-agents``).
"""

from agentstream.integrations.clients import anthropic_client, http_client, openai_client
from agentstream.integrations.tools import effect, idempotency_key, step
from agentstream.integrations.transport import JournaledTransport, RecordedStream

__all__ = [
    "JournaledTransport",
    "RecordedStream",
    "anthropic_client",
    "effect",
    "http_client",
    "idempotency_key",
    "openai_client",
    "step",
]
