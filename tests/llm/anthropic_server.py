"""A local HTTP server speaking Anthropic's Messages API wire format, for provider tests.

It checks each request the way the API documents its rules (headers, required fields, roles,
content blocks, ``tool_use``/``tool_result`` pairing, tool definitions, ``tool_choice``) and
answers 400 ``invalid_request_error`` in the API's error shape when one is broken. Valid
requests get the next scripted answer: a Messages response body, or an error with headers.
"""

from __future__ import annotations

import asyncio
import collections
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Answer = tuple[int, dict[str, Any], dict[str, str]]

_TOP_LEVEL = {
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "stream",
    "thinking",
    "service_tier",
}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def message(
    content: list[dict[str, Any]],
    *,
    stop_reason: str = "end_turn",
    model: str = "claude-sonnet-4-6",
    input_tokens: int = 25,
    output_tokens: int = 12,
) -> dict[str, Any]:
    """A Messages API response body."""
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def error(kind: str, text: str) -> dict[str, Any]:
    """A Messages API error body."""
    return {"type": "error", "error": {"type": kind, "message": text}}


def check(headers: dict[str, str], body: Any) -> str | None:
    """The first rule a request breaks, or None."""
    if not headers.get("x-api-key") and not headers.get("authorization", "").startswith("Bearer "):
        return "an x-api-key header or a Bearer authorization header is required"
    if not headers.get("anthropic-version"):
        return "anthropic-version header is required"
    if not isinstance(body, dict):
        return "body must be a JSON object"
    extra = set(body) - _TOP_LEVEL
    if extra:
        return f"{sorted(extra)[0]}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        return "system: Input should be a valid string or list"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return "messages: first message must use the user role"
    open_calls: set[str] = set()
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            return f"messages.{i}: content must be a non-empty string or list"
        results = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if open_calls and results != open_calls:
            return (
                f"messages.{i}: tool_use ids were found without tool_result blocks immediately "
                f"after: {', '.join(sorted(open_calls - results))}"
            )
        if results - open_calls:
            return f"messages.{i}: unexpected tool_use_id found in tool_result blocks"
        open_calls = set()
        for j, b in enumerate(blocks):
            kind = b.get("type")
            if kind == "text" and not (isinstance(b.get("text"), str) and b["text"]):
                return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
            if kind == "tool_use":
                if role != "assistant":
                    return f"messages.{i}.content.{j}: tool_use is only allowed in assistant turns"
                if not isinstance(b.get("input"), dict) or not b.get("id") or not b.get("name"):
                    return f"messages.{i}.content.{j}: tool_use needs id, name and an input object"
                open_calls.add(b["id"])
            elif kind == "tool_result" and role != "user":
                return f"messages.{i}.content.{j}: tool_result is only allowed in user turns"
            elif kind not in ("text", "image", "tool_use", "tool_result", "document"):
                return f"messages.{i}.content.{j}.type: unknown block type {kind!r}"
    if open_calls:
        return "the last assistant turn has tool_use blocks without tool_result blocks"
    names = set()
    for i, tool in enumerate(body.get("tools") or []):
        if set(tool) - {"name", "description", "input_schema", "cache_control"}:
            return f"tools.{i}: Extra inputs are not permitted"
        if not _TOOL_NAME.match(str(tool.get("name", ""))):
            return f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        if (tool.get("input_schema") or {}).get("type") != "object":
            return f"tools.{i}.input_schema.type: Input should be 'object'"
        names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if choice.get("type") not in ("auto", "any", "tool", "none"):
            return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
        if choice["type"] == "tool" and choice.get("name") not in names:
            return f"tool_choice.name: no tool named {choice.get('name')!r}"
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return "temperature: Input should be less than or equal to 1"
    return None


@dataclass
class Received:
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class AnthropicTestServer:
    """Serves scripted Messages API answers on a loopback port (background thread)."""

    answers: collections.deque[Callable[[dict[str, Any]], Answer]] = field(
        default_factory=collections.deque
    )
    received: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, body: dict[str, Any], status: int = 200, **headers: str) -> None:
        """Queue one answer."""
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        self.answers.append(lambda _req: (status, body, hdrs))

    async def _messages(self, request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = await request.json()
        problem = check(headers, body)
        if problem is not None:
            status, out, hdrs = 400, error("invalid_request_error", problem), {}
        else:
            status, out, hdrs = self.answers.popleft()(body)
        self.received.append(Received(headers, body, status))
        return web.json_response(out, status=status, headers={"request-id": "req_1", **hdrs})

    def start(self) -> AnthropicTestServer:
        ready = threading.Event()
        self._stop: asyncio.Event | None = None

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/messages", self._messages)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = int(runner.addresses[0][1])
            self._stop = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            ready.set()
            await self._stop.wait()
            await runner.cleanup()

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
