"""What the journaled transport reads from model-API traffic: which API, the request, the usage.

A model-API request is recognised by its method and path (``POST .../chat/completions``,
``.../responses``, ``.../messages``). Its JSON body becomes an
:class:`~agentstream.llm.base.LLMRequest` without loss: the conversation (chat ``messages``,
Responses ``input``, Anthropic ``messages``) goes to ``messages``, the tool list to ``tools``,
the completion cap to ``max_tokens`` and every other field, with the API's name, to ``params``.
The request fingerprint is therefore a function of the whole canonical body (key order and
whitespace do not matter; headers never count), and the journal's transcript compaction stores
each turn of a growing conversation once.

Answers, plain JSON or server-sent events, are read for what the pipeline needs: the response
id, the model and the token usage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agentstream.llm.base import LLMRequest, Usage

__all__ = ["ModelAPI", "Summary", "model_api", "request_of", "summarize"]


@dataclass(frozen=True, slots=True)
class ModelAPI:
    """One model API the transport journals.

    Attributes:
        name: ``chat``, ``responses`` or ``messages``.
        step: The journal step name of its calls.
        conversation: The body field holding the conversation.
        cap: The body field holding the completion token cap.
    """

    name: str
    step: str
    conversation: str
    cap: str


CHAT = ModelAPI("chat", "openai.chat", "messages", "max_tokens")
RESPONSES = ModelAPI("responses", "openai.responses", "input", "max_output_tokens")
MESSAGES = ModelAPI("messages", "anthropic.messages", "messages", "max_tokens")
_BY_SUFFIX = (("/chat/completions", CHAT), ("/responses", RESPONSES), ("/messages", MESSAGES))
API_FIELD = "wire_api"


def model_api(method: str, path: str) -> ModelAPI | None:
    """The model API a request calls, or None for any other request (listing models...)."""
    if method.upper() != "POST":
        return None
    trimmed = path.rstrip("/")
    for suffix, api in _BY_SUFFIX:
        if trimmed.endswith(suffix):
            return api
    return None


def request_of(api: ModelAPI, body: dict[str, Any]) -> LLMRequest:
    """The journaled form of a request body (lossless; see the module docstring)."""
    rest = {k: v for k, v in body.items() if k not in ("model", api.conversation, "tools", api.cap)}
    conversation = body.get(api.conversation)
    if isinstance(conversation, str):
        conversation = [{"role": "user", "content": conversation, "$string_input": True}]
    return LLMRequest(
        model=str(body.get("model") or ""),
        messages=list(conversation or []),
        tools=body.get("tools"),
        max_tokens=body.get(api.cap),
        params={API_FIELD: api.name, **rest},
    )


@dataclass(frozen=True, slots=True)
class Summary:
    """What an answer says about itself."""

    id: str
    model: str
    usage: Usage
    text: str | None = None


def _usage(api: ModelAPI, usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    if api is CHAT:
        return Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    return Usage(
        prompt_tokens=int(usage.get("input_tokens") or 0),
        completion_tokens=int(usage.get("output_tokens") or 0),
    )


def _events(text: str) -> Iterable[dict[str, Any]]:
    """The JSON ``data:`` payloads of a server-sent event stream."""
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(
            line[5:].lstrip() for line in frame.split("\n") if line.startswith("data:")
        )
        if not data or data == "[DONE]":
            continue
        try:
            payload = json.loads(data)
        except ValueError:
            continue
        if isinstance(payload, dict):
            yield payload


def _text(api: ModelAPI, body: dict[str, Any]) -> str | None:
    if api is CHAT:
        message = ((body.get("choices") or [{}])[0] or {}).get("message") or {}
        content = message.get("content")
        return content if isinstance(content, str) else None
    parts: list[str] = []
    items = body.get("output") if api is RESPONSES else [body]
    for item in items or []:
        for part in item.get("content") or []:
            if isinstance(part, dict) and part.get("type") in ("output_text", "text"):
                parts.append(str(part.get("text") or ""))
    return "".join(parts) or None


def summarize(api: ModelAPI, body: str, *, streamed: bool) -> Summary:
    """Id, model, usage and text of an answer body (JSON, or the text of an SSE stream)."""
    if not streamed:
        try:
            parsed = json.loads(body)
        except ValueError:
            return Summary("", "", Usage())
        if not isinstance(parsed, dict):
            return Summary("", "", Usage())
        return Summary(
            str(parsed.get("id") or ""),
            str(parsed.get("model") or ""),
            _usage(api, parsed.get("usage")),
            _text(api, parsed),
        )
    ident, model, prompt, completion = "", "", 0, 0
    texts: list[str] = []
    for event in _events(body):
        if api is CHAT:
            ident = ident or str(event.get("id") or "")
            model = model or str(event.get("model") or "")
            for choice in event.get("choices") or []:
                texts.append(str((choice.get("delta") or {}).get("content") or ""))
            if event.get("usage"):
                u = _usage(api, event["usage"])
                prompt, completion = u.prompt_tokens, u.completion_tokens
        elif api is RESPONSES:
            if event.get("type") == "response.output_text.delta":
                texts.append(str(event.get("delta") or ""))
            response = event.get("response")
            if isinstance(response, dict):
                ident = str(response.get("id") or ident)
                model = str(response.get("model") or model)
                if response.get("usage"):
                    u = _usage(api, response["usage"])
                    prompt, completion = u.prompt_tokens, u.completion_tokens
        else:
            kind = event.get("type")
            if kind == "message_start":
                message = event.get("message") or {}
                ident, model = str(message.get("id") or ""), str(message.get("model") or "")
                prompt = int((message.get("usage") or {}).get("input_tokens") or 0)
            elif kind == "content_block_delta":
                texts.append(str((event.get("delta") or {}).get("text") or ""))
            elif kind == "message_delta":
                completion = int((event.get("usage") or {}).get("output_tokens") or completion)
    return Summary(
        ident,
        model,
        Usage(prompt_tokens=prompt, completion_tokens=completion),
        "".join(texts) or None,
    )
