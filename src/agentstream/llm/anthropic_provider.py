"""The Anthropic provider, on the official ``anthropic`` SDK (Messages API).

Agents speak the chat-completions shape everywhere (:class:`~agentstream.llm.base.LLMRequest`);
this module translates it to the Messages API at the edge and the answer back:

* ``system`` (and ``developer``) messages become the ``system`` parameter;
* an assistant message's ``tool_calls`` become ``tool_use`` blocks, and ``tool`` messages become
  ``tool_result`` blocks in the following user turn (consecutive turns of one role are merged);
* function tools become ``{"name", "description", "input_schema"}`` tools, and ``tool_choice``
  ``auto``/``required``/``none``/a named function becomes ``auto``/``any``/``none``/``tool``;
* a structured-output request (``response_format`` with a JSON schema) becomes one extra tool
  whose input schema is the requested schema, forced with ``tool_choice``; its input is returned
  as the answer's text, so ``ctx.llm.parse`` validates it like any other provider's JSON;
* ``stop_reason`` maps to ``finish_reason`` (``end_turn`` -> ``stop``, ``max_tokens`` ->
  ``length``, ``tool_use`` -> ``tool_calls``, ``refusal`` -> ``refusal``), and
  ``model_context_window_exceeded`` raises :class:`~agentstream.failures.ContextOverflowError`.

SDK retries are off (``max_retries=0``): agentstream owns retries and rate-limit waits. Errors
are translated into :mod:`agentstream.failures`: 429 -> ``RateLimitedError`` (``retry-after``),
529 and 5xx -> ``ProviderUnavailable``, timeouts -> ``ProviderTimeout``, "prompt is too long" ->
``ContextOverflowError``. ``anthropic-ratelimit-*`` headers feed admission control.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from typing import TYPE_CHECKING, Any

from agentstream.failures import (
    ContextOverflowError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitedError,
)
from agentstream.llm.base import LLMRequest, LLMResponse, RateLimitSnapshot, ToolCall, Usage
from agentstream.llm.chat_format import parse_retry_after
from agentstream.llm.openai_provider import IDEMPOTENCY_HEADER, idempotency_key
from agentstream.llm.pricing import PriceTable, cost_of_answer

if TYPE_CHECKING:
    import anthropic  # the SDK is imported when a provider is made: it takes a second


__all__ = ["AnthropicProvider", "from_messages_response", "to_messages_request"]

DEFAULT_MAX_TOKENS = 4096
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [
            {"type": "text", "text": str(p.get("text", ""))} if p.get("type") == "text" else p
            for p in content
            if isinstance(p, dict)
        ]
    text = _text_of(content)
    return [{"type": "text", "text": text}] if text else []


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"raw_arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _tool_name(name: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64]
    return cleaned or "structured_output"


def _convert_tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict):
        fn = choice.get("function") or {}
        if fn.get("name"):
            return {"type": "tool", "name": fn["name"]}
    raise ValueError(f"unsupported tool_choice for Anthropic: {choice!r}")


def to_messages_request(request: LLMRequest) -> tuple[dict[str, Any], str | None]:
    """The Messages API parameters for a chat-shaped request.

    Returns:
        The keyword arguments for ``messages.create`` and, when structured output was asked
        for, the name of the tool that carries it.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for m in request.messages:
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(m.get("content")))
        elif role == "tool":
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": str(m.get("tool_call_id", "")),
                        "content": _text_of(m.get("content")),
                    }
                ],
            )
        elif role == "assistant":
            blocks = _blocks(m.get("content"))
            for call in m.get("tool_calls") or []:
                fn = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": str(call.get("id", "")),
                        "name": str(fn.get("name", "")),
                        "input": _tool_input(str(fn.get("arguments", ""))),
                    }
                )
            add("assistant", blocks)
        else:
            add("user", _blocks(m.get("content")))

    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    if system:
        params["system"] = "\n\n".join(s for s in system if s)
    tools = [
        {
            "name": fn["name"],
            "description": fn.get("description", ""),
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
        }
        for fn in (t.get("function", t) for t in request.tools or [])
    ]
    choice = _convert_tool_choice(request.tool_choice)
    structured: str | None = None
    fmt = request.response_format or {}
    if fmt.get("type") in ("json_schema", "json_object"):
        spec = fmt.get("json_schema") or {}
        structured = _tool_name(str(spec.get("name") or "structured_output"))
        tools.append(
            {
                "name": structured,
                "description": "Give the final answer as structured data matching this schema.",
                "input_schema": spec.get("schema") or {"type": "object"},
            }
        )
        choice = {"type": "tool", "name": structured}
    if tools:
        params["tools"] = tools
    if choice is not None:
        params["tool_choice"] = choice
    extra: dict[str, Any] = {}
    if request.temperature is not None:
        extra["temperature"] = request.temperature
    for key, value in request.params.items():
        if key == "stop":
            params["stop_sequences"] = [value] if isinstance(value, str) else list(value)
        else:
            extra[key] = value
    if extra:
        params["extra_body"] = extra
    return params, structured


def from_messages_response(
    body: dict[str, Any], *, structured_tool: str | None = None, latency_ms: float = 0.0
) -> LLMResponse:
    """An :class:`LLMResponse` from a Messages API response body.

    Raises:
        ContextOverflowError: The model stopped because its context window was exceeded.
    """
    stop_reason = str(body.get("stop_reason") or "end_turn")
    if stop_reason == "model_context_window_exceeded":
        raise ContextOverflowError("the conversation exceeded the model's context window")
    texts: list[str] = []
    calls: list[ToolCall] = []
    structured: str | None = None
    for block in body.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {})
            if structured_tool is not None and block.get("name") == structured_tool:
                structured = arguments
            else:
                calls.append(
                    ToolCall(
                        id=str(block.get("id", "")), name=str(block["name"]), arguments=arguments
                    )
                )
    finish = _STOP_REASONS.get(stop_reason, stop_reason)
    if structured is not None and not calls:
        finish = "stop"
    usage = body.get("usage") or {}
    prompt = sum(
        int(usage.get(k) or 0)
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    text = structured if structured is not None else ("".join(texts) if texts else None)
    refusal = (text or "refused") if finish == "refusal" else None
    return LLMResponse(
        id=str(body.get("id", "")),
        model=str(body.get("model", "")),
        text=None if refusal else text,
        tool_calls=calls,
        finish_reason=finish,
        refusal=refusal,
        usage=Usage(prompt_tokens=prompt, completion_tokens=int(usage.get("output_tokens") or 0)),
        latency_ms=latency_ms,
        raw=body,
    )


def _seconds_until(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        at = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, at.timestamp() - time.time())


def _int(headers: dict[str, str], name: str) -> int | None:
    try:
        return int(headers[name]) if name in headers else None
    except ValueError:
        return None


def rate_limit_snapshot(headers: dict[str, str]) -> RateLimitSnapshot | None:
    """The ``anthropic-ratelimit-*`` headers of an answer, if it has any."""
    if not any(k.startswith("anthropic-ratelimit-") for k in headers):
        return None
    p = "anthropic-ratelimit-"
    tokens = "tokens" if f"{p}tokens-limit" in headers else "input-tokens"
    return RateLimitSnapshot(
        limit_requests=_int(headers, f"{p}requests-limit"),
        remaining_requests=_int(headers, f"{p}requests-remaining"),
        reset_requests_s=_seconds_until(headers.get(f"{p}requests-reset")),
        limit_tokens=_int(headers, f"{p}{tokens}-limit"),
        remaining_tokens=_int(headers, f"{p}{tokens}-remaining"),
        reset_tokens_s=_seconds_until(headers.get(f"{p}{tokens}-reset")),
    )


def error_for_status(
    status: int, body: dict[str, Any] | None, headers: dict[str, str]
) -> Exception:
    """Translate a Messages API error answer into agentstream's failure tree."""
    error = (body or {}).get("error") or {}
    message = str(error.get("message") or f"HTTP {status}")
    kind = str(error.get("type") or "")
    if status == 429 or kind == "rate_limit_error":
        return RateLimitedError(message, retry_after=parse_retry_after(headers))
    if status in (408, 504) or kind == "timeout_error":
        return ProviderTimeout(message)
    if status >= 500 or kind in ("overloaded_error", "api_error"):
        return ProviderUnavailable(message, retry_after=parse_retry_after(headers))
    if status == 413 or "prompt is too long" in message.lower():
        return ContextOverflowError(message)
    return RuntimeError(f"LLM request rejected ({status} {kind}): {message}")


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


class AnthropicProvider:
    """Claude models through ``anthropic.AsyncAnthropic`` (the Messages API).

    Args:
        base_url: Endpoint (default: the SDK's, i.e. ``$ANTHROPIC_BASE_URL`` or
            api.anthropic.com).
        api_key: API key (default: ``$ANTHROPIC_API_KEY``).
        client: A ready SDK client (build it with ``max_retries=0``).
        timeout_s: Longest wait for one answer.
        prices: Price table for cost accounting.
        name: Provider name recorded in metrics.
        idempotency_header: Header carrying the step key digest (None: do not send one).
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        client: anthropic.AsyncAnthropic | None = None,
        timeout_s: float = 120.0,
        prices: PriceTable | None = None,
        name: str = "anthropic",
        idempotency_header: str | None = IDEMPOTENCY_HEADER,
    ) -> None:
        import anthropic

        self.name = name
        self._client = client or anthropic.AsyncAnthropic(
            base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s
        )
        self.prices = prices or PriceTable()
        self._idempotency_header = idempotency_header

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The SDK client."""
        return self._client

    async def complete(self, request: LLMRequest, *, step_key: str) -> LLMResponse:
        """Make one Messages API call (see the module docstring for the translation)."""
        params, structured = to_messages_request(request)
        headers = (
            {self._idempotency_header: idempotency_key(step_key)}
            if self._idempotency_header
            else None
        )
        import anthropic

        started = time.monotonic()
        try:
            raw = await self._client.messages.with_raw_response.create(
                extra_headers=headers, **params
            )
        except anthropic.APIStatusError as exc:
            try:
                body = exc.response.json()
            except ValueError:
                body = None
            raise error_for_status(
                exc.status_code,
                body if isinstance(body, dict) else None,
                _lower(exc.response.headers),
            ) from exc
        except anthropic.APITimeoutError as exc:
            raise ProviderTimeout(f"{self.name}: no answer in time: {exc}") from exc
        except anthropic.APIConnectionError as exc:
            raise ProviderUnavailable(f"{self.name}: connection failed: {exc}") from exc
        http = raw.http_response
        try:
            body = http.json()
        except ValueError as exc:
            raise ProviderUnavailable(f"{self.name}: the answer is not JSON") from exc
        response = from_messages_response(
            body, structured_tool=structured, latency_ms=(time.monotonic() - started) * 1000
        )
        model = response.model or request.model
        headers = _lower(http.headers)
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
