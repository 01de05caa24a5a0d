"""The OpenAI-compatible provider, on the official ``openai`` SDK.

One provider for every chat-completions endpoint: OpenAI, Azure OpenAI, vLLM, Ollama, the
llama.cpp server, LM Studio and the agentstream LLM simulator. The base URL selects the endpoint::

    OpenAIProvider()                                              # api.openai.com, $OPENAI_API_KEY
    OpenAIProvider(base_url="http://localhost:11434/v1")          # Ollama
    OpenAIProvider(base_url="http://localhost:8000/v1")           # vLLM
    OpenAIProvider(client=openai.AsyncAzureOpenAI(...))           # Azure OpenAI

The SDK's own retries are switched off (``max_retries=0``): retries, rate-limit waits and
backoff belong to agentstream, which journals them and counts attempts durably. Each call carries
the journaled step's deterministic key as an ``Idempotency-Key`` header, so a gateway that
deduplicates can recognise a repeated step. Rate-limit headers of every answer are read from the
raw HTTP response and handed to admission control.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from agentstream.failures import ProviderTimeout, ProviderUnavailable
from agentstream.llm.base import LLMRequest, LLMResponse
from agentstream.llm.chat_format import error_for_status, rate_limit_snapshot, response_from_chat
from agentstream.llm.pricing import PriceTable, cost_of_answer

if TYPE_CHECKING:
    import openai  # the SDK is imported when a provider is made: it takes a second


__all__ = ["IDEMPOTENCY_HEADER", "OpenAIProvider", "idempotency_key"]

IDEMPOTENCY_HEADER = "Idempotency-Key"

_TYPED_FIELDS = ("tools", "tool_choice", "response_format", "temperature", "max_tokens")


def idempotency_key(step_key: str) -> str:
    """The header value sent for a journaled step: a stable digest of its key.

    The step key contains the agent name and the event identity, which may be long or
    non-ASCII; the digest is short, header-safe and equal for every attempt of the step.
    """
    return "as-" + hashlib.sha256(step_key.encode("utf-8")).hexdigest()[:40]


def _headers(response: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items()}


def _json_or_none(response: Any) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class OpenAIProvider:
    """Chat completions through ``openai.AsyncOpenAI``.

    Args:
        base_url: Endpoint (default: the SDK's, i.e. ``$OPENAI_BASE_URL`` or api.openai.com).
        api_key: API key (default: ``$OPENAI_API_KEY``; local servers accept any text).
        client: A ready SDK client (``AsyncOpenAI`` or ``AsyncAzureOpenAI``); its retries are
            used as configured, so build it with ``max_retries=0``.
        timeout_s: Longest wait for one answer.
        prices: Price table for cost accounting.
        name: Provider name recorded in metrics.
        default_headers: Extra headers sent with every request.
        idempotency_header: Header carrying the step key digest (None: do not send one).
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        client: openai.AsyncOpenAI | None = None,
        timeout_s: float = 120.0,
        prices: PriceTable | None = None,
        name: str = "openai",
        default_headers: dict[str, str] | None = None,
        idempotency_header: str | None = IDEMPOTENCY_HEADER,
    ) -> None:
        import openai

        self.name = name
        self._client = client or openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            max_retries=0,
            timeout=timeout_s,
            default_headers=default_headers,
        )
        self.prices = prices or PriceTable()
        self._idempotency_header = idempotency_header

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client."""
        return self._client

    @property
    def endpoint(self) -> str:
        """The base URL calls go to (names the circuit breakers of its models)."""
        return str(self._client.base_url).rstrip("/")

    async def complete(self, request: LLMRequest, *, step_key: str) -> LLMResponse:
        """Make one chat-completions call.

        Raises:
            RateLimitedError: 429 (with the server's retry-after).
            ProviderUnavailable: 5xx, or the endpoint could not be reached.
            ProviderTimeout: No answer in time.
            ContextOverflowError: The prompt does not fit the model's context window.
        """
        kwargs: dict[str, Any] = {
            f: getattr(request, f) for f in _TYPED_FIELDS if getattr(request, f) is not None
        }
        headers = (
            {self._idempotency_header: idempotency_key(step_key)}
            if self._idempotency_header
            else None
        )
        import openai

        started = time.monotonic()
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                model=request.model,
                messages=request.messages,  # type: ignore[arg-type]
                extra_headers=headers,
                extra_body=dict(request.params) or None,
                **kwargs,
            )
        except openai.APIStatusError as exc:
            raise error_for_status(
                exc.status_code, _json_or_none(exc.response), _headers(exc.response)
            ) from exc
        except openai.APITimeoutError as exc:
            raise ProviderTimeout(f"{self.name}: no answer in time: {exc}") from exc
        except openai.APIConnectionError as exc:
            raise ProviderUnavailable(f"{self.name}: connection failed: {exc}") from exc
        latency_ms = (time.monotonic() - started) * 1000
        http = raw.http_response
        body = _json_or_none(http)
        if body is None:
            raise ProviderUnavailable(f"{self.name}: the answer is not a JSON object")
        response = response_from_chat(body, latency_ms=latency_ms)
        model = response.model or request.model
        headers = _headers(http)
        return response.model_copy(
            update={
                "model": model,
                **cost_of_answer(self.prices, model, response.usage, headers, body),
                "rate_limits": rate_limit_snapshot(headers),
            }
        )

    async def aclose(self) -> None:
        """Close the SDK client's connections."""
        await self._client.close()
