"""Ready SDK clients whose model calls are journaled: ``openai_client()``, ``anthropic_client()``.

Each returns the official SDK's async client on a :class:`JournaledTransport`, with the SDK's own
retries off (agentstream retries, waits on 429 and counts attempts durably; an SDK retry would
be a second journaled call). A client finds the running event itself, so one client, created
once at import time like any other, serves every event::

    client = agentstream.integrations.openai_client(base_url="http://localhost:8000/v1")

    @app.agent(source="tickets")
    async def triage(ctx, ticket):
        reply = await client.chat.completions.create(model="gpt-4o-mini", messages=[...])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentstream.integrations._http import httpx
from agentstream.integrations.transport import JournaledTransport

if TYPE_CHECKING:
    import anthropic
    import openai

__all__ = ["anthropic_client", "http_client", "openai_client"]


def http_client(
    transport: JournaledTransport | None = None, *, timeout_s: float = 600.0
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on a journaled transport, for an SDK's ``http_client=``."""
    return httpx.AsyncClient(transport=transport or JournaledTransport(), timeout=timeout_s)


def _on_transport(
    factory: Any, transport: JournaledTransport | None, options: dict[str, Any]
) -> Any:
    options.setdefault("max_retries", 0)
    return factory(http_client=http_client(transport), **options)


def openai_client(
    *, transport: JournaledTransport | None = None, **options: Any
) -> openai.AsyncOpenAI:
    """An ``openai.AsyncOpenAI`` whose model calls are journaled.

    Args:
        transport: The journaled transport (default: a new one on the default upstream).
        **options: ``AsyncOpenAI`` options (``base_url``, ``api_key``, ``timeout``...);
            ``max_retries`` defaults to 0.
    """
    import openai

    client: openai.AsyncOpenAI = _on_transport(openai.AsyncOpenAI, transport, options)
    return client


def anthropic_client(
    *, transport: JournaledTransport | None = None, **options: Any
) -> anthropic.AsyncAnthropic:
    """An ``anthropic.AsyncAnthropic`` on the journaled transport (options as for OpenAI)."""
    import anthropic

    client: anthropic.AsyncAnthropic = _on_transport(anthropic.AsyncAnthropic, transport, options)
    return client
