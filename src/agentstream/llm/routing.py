"""A provider that sends each model's calls to its own provider (endpoint).

Useful for a fallback model served elsewhere: while the primary endpoint is down, the agent's
``fallback_model`` is answered by another endpoint, and each endpoint has its own circuit
breakers::

    llm = ModelRouter({"gpt-4o": OpenAIProvider(), "llama3": OpenAIProvider(base_url=OLLAMA)})
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from agentstream.failures import ConfigurationError
from agentstream.llm.base import LLMProvider, LLMRequest, LLMResponse
from agentstream.llm.breaker import endpoint_of

__all__ = ["ModelRouter"]


class ModelRouter:
    """Routes calls by model name (exact, else longest prefix, else ``default``).

    Args:
        routes: Provider of each model name or name prefix.
        default: Provider of every other model (None: other models are a configuration error).
        name: Provider name recorded in metrics.
    """

    def __init__(
        self,
        routes: Mapping[str, LLMProvider],
        *,
        default: LLMProvider | None = None,
        name: str = "router",
    ) -> None:
        self.name = name
        self._routes = dict(routes)
        self._default = default

    def provider_for(self, model: str) -> LLMProvider:
        """The provider a model's calls go to."""
        if model in self._routes:
            return self._routes[model]
        prefix = max((m for m in self._routes if model.startswith(m)), key=len, default=None)
        if prefix is not None:
            return self._routes[prefix]
        if self._default is None:
            raise ConfigurationError(f"no provider routes model {model!r}")
        return self._default

    def endpoint_for(self, model: str) -> str:
        """The endpoint of the provider a model's calls go to."""
        return endpoint_of(self.provider_for(model), model)

    async def complete(self, request: LLMRequest, *, step_key: str) -> LLMResponse:
        """Make the call with the model's provider."""
        return await self.provider_for(request.model).complete(request, step_key=step_key)

    async def aclose(self) -> None:
        """Close every provider once."""
        providers = {id(p): p for p in [*self._routes.values(), self._default] if p is not None}
        await asyncio.gather(*(p.aclose() for p in providers.values()))
