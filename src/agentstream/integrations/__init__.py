"""Agent code written for the OpenAI and Anthropic SDKs and agent frameworks, journaled unchanged.

* :class:`JournaledTransport`: an httpx transport turning the SDKs' model-API requests into
  journaled model calls of the running event;
* :func:`openai_client`, :func:`anthropic_client`, :func:`http_client`: SDK clients on it.
"""

from agentstream.integrations.clients import anthropic_client, http_client, openai_client
from agentstream.integrations.transport import JournaledTransport, RecordedStream

__all__ = [
    "JournaledTransport",
    "RecordedStream",
    "anthropic_client",
    "http_client",
    "openai_client",
]
