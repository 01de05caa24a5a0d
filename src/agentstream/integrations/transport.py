"""The journaled HTTP transport: model calls made by the official SDKs become journaled steps.

:class:`JournaledTransport` is an ``httpx`` transport (the SDKs' ``httpx2``) for the clients of
the ``openai`` and ``anthropic`` SDKs, and of every framework built on them. It recognises
model-API requests (chat completions, the Responses API, Anthropic Messages; see
:mod:`agentstream.integrations.traffic`) and hands each to the running event's
:class:`~agentstream.context.Context` as a journaled model call, through the same pipeline as
``ctx.llm``: budgets, admission control (RPM/TPM, AIMD concurrency), ``Retry-After`` waits on 429,
usage and cost accounting, transcripts, tracing and metrics. Then:

* a call the journal has recorded is answered from the record, byte for byte (a streamed answer
  chunk by chunk, as it arrived), and nothing is sent;
* a new call is sent upstream with the step's deterministic ``Idempotency-Key``, its whole
  answer (every chunk of a stream) recorded before the SDK sees it, then handed to the SDK.

Requests that are not model calls (listing models, files...) pass through unjournaled. An error
agentstream raises inside the transport (non-determinism, a spent budget) is wrapped by the
SDK (``APIConnectionError ... from err``); the runtime finds it in the exception's causes.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from agentstream.current import current_context, maybe_current_context
from agentstream.failures import TransientError
from agentstream.integrations._http import httpx
from agentstream.integrations.traffic import ModelAPI, model_api, request_of, summarize
from agentstream.llm.base import LLMRequest, LLMResponse
from agentstream.llm.chat_format import error_for_status, rate_limit_snapshot
from agentstream.llm.openai_provider import IDEMPOTENCY_HEADER, idempotency_key
from agentstream.llm.pricing import PriceTable, cost_of_answer

if TYPE_CHECKING:
    from agentstream.context import Context

__all__ = ["JournaledTransport", "RecordedStream"]

_KEPT_HEADERS = ("content-type", "x-request-id", "request-id", "openai-model", "anthropic-model")


def _encode_chunk(chunk: bytes) -> Any:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(chunk).decode("ascii")}


def _decode_chunk(chunk: Any) -> bytes:
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    return base64.b64decode(chunk["b64"])


class RecordedStream(httpx.AsyncByteStream):
    """A response body served from recorded chunks, in their recorded order."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class _RejectedRequest(Exception):
    """The API refused the request (a 4xx other than 408/409/429): handed to the SDK as is."""

    def __init__(self, response: httpx.Response, body: bytes) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.body = body


class _Upstream:
    """The provider of one journaled call: sends the SDK's own request, records the answer."""

    name = "http"

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        request: httpx.Request,
        api: ModelAPI,
        prices: PriceTable,
    ) -> None:
        self._transport = transport
        self._request = request
        self._api = api
        self._prices = prices
        self.name = api.step.split(".", 1)[0]  # openai or anthropic: gen_ai.provider.name

    async def complete(self, request: LLMRequest, *, step_key: str) -> LLMResponse:
        """Send the request upstream and read the whole answer."""
        headers = self._request.headers.copy()
        headers[IDEMPOTENCY_HEADER] = idempotency_key(step_key)
        headers["accept-encoding"] = "identity"  # chunks are recorded as the SDK reads them
        outgoing = httpx.Request(
            self._request.method,
            self._request.url,
            headers=headers,
            content=self._request.content,
            extensions=self._request.extensions,
        )
        started = time.monotonic()
        response = await self._transport.handle_async_request(outgoing)
        try:
            chunks = [chunk async for chunk in response.aiter_raw()]
        finally:
            await response.aclose()
        latency_ms = (time.monotonic() - started) * 1000
        body = b"".join(chunks)
        lower = {k.lower(): v for k, v in response.headers.items()}
        if response.status_code != 200:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            error = error_for_status(
                response.status_code, parsed if isinstance(parsed, dict) else None, lower
            )
            if isinstance(error, TransientError):
                raise error
            raise _RejectedRequest(response, body)
        streamed = "text/event-stream" in lower.get("content-type", "")
        summary = summarize(self._api, body.decode("utf-8", "replace"), streamed=streamed)
        model = summary.model or request.model
        return LLMResponse(
            id=summary.id,
            model=model,
            text=summary.text,
            usage=summary.usage,
            **cost_of_answer(self._prices, model, summary.usage, lower, _json_body(body, streamed)),
            latency_ms=latency_ms,
            raw={
                "http_status": response.status_code,
                "headers": {k: lower[k] for k in _KEPT_HEADERS if k in lower},
                "chunks": [_encode_chunk(c) for c in chunks],
            },
            rate_limits=rate_limit_snapshot(lower),
        )

    async def aclose(self) -> None:
        """Nothing to release: the transport belongs to the client."""


class JournaledTransport(httpx.AsyncBaseTransport):
    """An httpx transport that journals every model-API call in the running event.

    Args:
        upstream: The transport that really sends (default: ``httpx.AsyncHTTPTransport()``).
        context: The event's Context (default: :func:`agentstream.current_context` at each
            request, so one client can be shared by every event).
        prices: Price table for cost accounting (default: the built-in one).
        outside_handler: ``"raise"`` (default) fails a model call made outside an agent's
            handler; ``"send"`` sends it unjournaled (scripts, start-up checks).

    Example::

        client = openai.AsyncOpenAI(
            http_client=httpx.AsyncClient(transport=JournaledTransport()), max_retries=0
        )
    """

    def __init__(
        self,
        upstream: httpx.AsyncBaseTransport | None = None,
        *,
        context: Context | None = None,
        prices: PriceTable | None = None,
        outside_handler: str = "raise",
    ) -> None:
        if outside_handler not in ("raise", "send"):
            raise ValueError("outside_handler must be 'raise' or 'send'")
        self._upstream = upstream or httpx.AsyncHTTPTransport()
        self._context = context
        self._prices = prices or PriceTable()
        self._outside = outside_handler

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer a model call from the journal, or send it and record the answer."""
        api = model_api(request.method, request.url.path)
        if api is None:
            return await self._upstream.handle_async_request(request)
        ctx = self._context
        if ctx is None:
            ctx = maybe_current_context()
            if ctx is None and self._outside == "send":
                return await self._upstream.handle_async_request(request)
            ctx = ctx or current_context()
        content = await request.aread()
        body = json.loads(content)
        llm_request = request_of(api, body)
        upstream = _Upstream(self._upstream, request, api, self._prices)
        try:
            answer = await ctx.call_llm(
                llm_request, name=api.step, prompt_version=None, via=upstream
            )
        except _RejectedRequest as rejected:
            return httpx.Response(
                rejected.response.status_code,
                headers=rejected.response.headers,
                content=rejected.body,
                request=request,
            )
        raw = answer.raw or {}
        chunks = [_decode_chunk(c) for c in raw.get("chunks") or []]
        return httpx.Response(
            int(raw.get("http_status", 200)),
            headers=raw.get("headers") or {},
            stream=RecordedStream(chunks),
            request=request,
        )

    async def aclose(self) -> None:
        """Close the upstream transport."""
        await self._upstream.aclose()


def _json_body(body: bytes, streamed: bool) -> dict[str, Any] | None:
    """A non-streamed answer's JSON body (for a ``usage.cost`` field), else None."""
    if streamed:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
