"""Translation between agentstream's LLM types and the chat-completions wire format.

Used by the simulator (which speaks this format over HTTP and in-process) and by the
OpenAI-compatible provider.
"""

from __future__ import annotations

from typing import Any

from agentstream.failures import (
    ContextOverflowError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitedError,
    TransientError,
)
from agentstream.llm.base import LLMRequest, LLMResponse, RateLimitSnapshot, ToolCall, Usage


def chat_body(request: LLMRequest) -> dict[str, Any]:
    """The chat-completions request body for a request."""
    body: dict[str, Any] = {"model": request.model, "messages": request.messages}
    if request.tools:
        body["tools"] = request.tools
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    body.update(request.params)
    return body


def response_from_chat(body: dict[str, Any], *, latency_ms: float = 0.0) -> LLMResponse:
    """Build an :class:`LLMResponse` from a chat-completions response body."""
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = [
        ToolCall(
            id=str(c.get("id", "")),
            name=str((c.get("function") or {}).get("name", "")),
            arguments=str((c.get("function") or {}).get("arguments", "")),
        )
        for c in message.get("tool_calls") or []
    ]
    usage = body.get("usage") or {}
    return LLMResponse(
        id=str(body.get("id", "")),
        model=str(body.get("model", "")),
        text=message.get("content"),
        tool_calls=calls,
        finish_reason=str(choice.get("finish_reason") or "stop"),
        refusal=message.get("refusal"),
        usage=Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        ),
        latency_ms=latency_ms,
        raw=body,
    )


def parse_retry_after(headers: dict[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` or ``x-ratelimit-reset-*``."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        if "retry-after-ms" in lower:
            return float(lower["retry-after-ms"]) / 1000.0
        if "retry-after" in lower:
            return float(lower["retry-after"])
    except ValueError:
        pass
    resets = [
        parse_duration(lower[k])
        for k in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if k in lower
    ]
    found = [r for r in resets if r is not None]
    return max(found) if found else None


def _int_header(lower: dict[str, str], name: str) -> int | None:
    try:
        return int(float(lower[name])) if name in lower else None
    except ValueError:
        return None


def rate_limit_snapshot(headers: dict[str, str]) -> RateLimitSnapshot | None:
    """The ``x-ratelimit-*`` headers of an OpenAI-compatible answer, if it has any."""
    lower = {k.lower(): v for k, v in headers.items()}
    if not any(k.startswith("x-ratelimit-") for k in lower):
        return None
    reset_requests = lower.get("x-ratelimit-reset-requests")
    reset_tokens = lower.get("x-ratelimit-reset-tokens")
    return RateLimitSnapshot(
        limit_requests=_int_header(lower, "x-ratelimit-limit-requests"),
        remaining_requests=_int_header(lower, "x-ratelimit-remaining-requests"),
        reset_requests_s=None if reset_requests is None else parse_duration(reset_requests),
        limit_tokens=_int_header(lower, "x-ratelimit-limit-tokens"),
        remaining_tokens=_int_header(lower, "x-ratelimit-remaining-tokens"),
        reset_tokens_s=None if reset_tokens is None else parse_duration(reset_tokens),
    )


def parse_duration(text: str) -> float | None:
    """Parse OpenAI-style durations such as ``1s``, ``6m0s``, ``250ms`` or ``0.5``."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        i += len(unit)
        if not number:
            return None
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}.get(unit)
        if scale is None:
            return None
        total += float(number) * scale
        number = ""
    return total if not number else total + float(number)


def error_for_status(
    status: int, body: dict[str, Any] | None, headers: dict[str, str]
) -> Exception:
    """Translate an HTTP error answer into agentstream's failure tree."""
    error = (body or {}).get("error") or {}
    message = str(error.get("message") or f"HTTP {status}")
    code = str(error.get("code") or "")
    if status == 429 and code == "insufficient_quota":
        # Billing, not pacing: waiting a few seconds will not help, so it is not absorbed as a
        # rate-limit wait; it counts as a transient failure of the event.
        return TransientError(f"LLM quota exhausted: {message}")
    if status == 429:
        return RateLimitedError(message, retry_after=parse_retry_after(headers))
    if status in (408, 504):
        return ProviderTimeout(message)
    if status >= 500:
        return ProviderUnavailable(message, retry_after=parse_retry_after(headers))
    if code == "context_length_exceeded" or "context length" in message.lower():
        return ContextOverflowError(message)
    if status == 409:
        return TransientError(message)
    return RuntimeError(f"LLM request rejected ({status}): {message}")
