"""The simulator's other dialects: the OpenAI Responses API and the Anthropic Messages API.

The simulator engine speaks chat completions. These functions translate a Responses or Messages
request body into the equivalent chat-completions body (instructions and system prompts, text
and tool-result turns, function tools, structured output), and the engine's chat answer back
into the dialect's response body, so one engine, with its randomness, latency and rate limits,
answers all three APIs.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

__all__ = [
    "anthropic_error",
    "chat_from_messages",
    "chat_from_responses",
    "message_from_chat",
    "response_from_chat",
]

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
}


def _text_of(content: Any) -> str:
    """The text of a content value: a string, or a list of text-bearing parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return "" if content is None else json.dumps(content)


# -- OpenAI Responses API ------------------------------------------------------------------------


def _responses_tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "function":
            fn = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
            out.append({"type": "function", "function": fn})
    return out


def _responses_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def chat_from_responses(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body equivalent to a Responses API request body."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": _text_of(body["instructions"])})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items or []:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(
                {"role": item.get("role", "user"), "content": _text_of(item["content"])}
            )
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item.get("arguments", "")},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item["call_id"],
                    "content": _text_of(item["output"]),
                }
            )
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    tools = _responses_tools(body.get("tools") or [])
    if tools:
        chat["tools"] = tools
        if body.get("tool_choice") is not None:
            chat["tool_choice"] = _responses_tool_choice(body["tool_choice"])
    fmt = (body.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": fmt.get("name", "output"), "schema": fmt.get("schema") or {}},
        }
    elif fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    return chat


def response_from_chat(answer: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A Responses API response body carrying the engine's chat answer."""
    choice = answer["choices"][0]
    message = choice["message"]
    suffix = uuid.uuid4().hex[:24]
    output: list[dict[str, Any]] = []
    if message.get("tool_calls"):
        for i, call in enumerate(message["tool_calls"]):
            output.append(
                {
                    "type": "function_call",
                    "id": f"fc_{suffix}{i}",
                    "call_id": call["id"],
                    "name": call["function"]["name"],
                    "arguments": call["function"]["arguments"],
                    "status": "completed",
                }
            )
    else:
        part = (
            {"type": "refusal", "refusal": message["refusal"]}
            if message.get("refusal")
            else {"type": "output_text", "text": message.get("content") or "", "annotations": []}
        )
        output.append(
            {
                "type": "message",
                "id": f"msg_{suffix}",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    usage = answer["usage"]
    return {
        "id": f"resp_{suffix}",
        "object": "response",
        "created_at": answer.get("created", int(time.time())),
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": answer["model"],
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "temperature": request.get("temperature"),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "usage": {
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
        },
        "metadata": request.get("metadata") or {},
    }


# -- Anthropic Messages API ----------------------------------------------------------------------


def chat_from_messages(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body equivalent to a Messages API request body."""
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _text_of(body["system"])})
    for m in body.get("messages") or []:
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        text = "\n".join(b["text"] for b in blocks if b.get("type") == "text")
        if m.get("role") == "assistant":
            calls = [
                {
                    "id": b["id"],
                    "type": "function",
                    "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})},
                }
                for b in blocks
                if b.get("type") == "tool_use"
            ]
            out: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                out["tool_calls"] = calls
            messages.append(out)
            continue
        for b in blocks:
            if b.get("type") == "tool_result":
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": b["tool_use_id"],
                        "content": _text_of(b.get("content")),
                    }
                )
        if text:
            messages.append({"role": "user", "content": text})
    chat: dict[str, Any] = {
        "model": body.get("model"),
        "messages": messages,
        "max_tokens": body.get("max_tokens"),
    }
    tools: list[dict[str, Any]] = [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters": t.get("input_schema") or {"type": "object"},
            },
        }
        for t in body.get("tools") or []
    ]
    if tools:
        chat["tools"] = tools
        choice = (body.get("tool_choice") or {}).get("type")
        if choice == "any":
            chat["tool_choice"] = "required"
        elif choice == "none":
            chat["tool_choice"] = "none"
        elif choice == "tool":
            chat["tool_choice"] = "required"
            name = body["tool_choice"].get("name")
            chat["tools"] = [t for t in tools if t["function"]["name"] == name]
    return chat


def message_from_chat(answer: dict[str, Any]) -> dict[str, Any]:
    """A Messages API response body carrying the engine's chat answer."""
    message = answer["choices"][0]["message"]
    suffix = uuid.uuid4().hex[:24]
    content: list[dict[str, Any]] = []
    stop_reason = "end_turn"
    if message.get("tool_calls"):
        stop_reason = "tool_use"
        for call in message["tool_calls"]:
            content.append(
                {
                    "type": "tool_use",
                    "id": "toolu_" + call["id"].removeprefix("call_"),
                    "name": call["function"]["name"],
                    "input": json.loads(call["function"]["arguments"] or "{}"),
                }
            )
    else:
        content.append({"type": "text", "text": message.get("content") or message.get("refusal")})
        if message.get("refusal"):
            stop_reason = "refusal"
    usage = answer["usage"]
    return {
        "id": f"msg_{suffix}",
        "type": "message",
        "role": "assistant",
        "model": answer["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage["prompt_tokens"],
            "output_tokens": usage["completion_tokens"],
        },
    }


def anthropic_error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-shaped error body in the Messages API's error shape."""
    message = (body.get("error") or {}).get("message") or "error"
    return {
        "type": "error",
        "error": {"type": _ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message},
    }
