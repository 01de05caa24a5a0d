"""The LLM provider interface.

Requests and responses are :mod:`agentstream.llm_types` (re-exported here). Each provider
translates the neutral chat-completions shape to its own API at the edge, and translates its
SDK's errors into :mod:`agentstream.failures`: 429 -> ``RateLimitedError`` with
``retry_after``, 5xx -> ``ProviderUnavailable``, timeouts -> ``ProviderTimeout``, context
length -> ``ContextOverflowError``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from agentstream.llm_types import LLMRequest, LLMResponse, RateLimitSnapshot, ToolCall, Usage

__all__ = ["LLMProvider", "LLMRequest", "LLMResponse", "RateLimitSnapshot", "ToolCall", "Usage"]


@runtime_checkable
class LLMProvider(Protocol):
    """Something that answers chat requests: a real API, a local server, the simulator."""

    name: str

    async def complete(self, request: LLMRequest, *, step_key: str) -> LLMResponse:
        """Make one call.

        Args:
            request: The call.
            step_key: Deterministic id of the journaled step (event identity and sequence);
                providers pass it as an idempotency header where the API accepts one.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
