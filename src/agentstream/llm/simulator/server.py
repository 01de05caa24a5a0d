"""The LLM simulator as an OpenAI-compatible HTTP server.

It serves the :class:`~agentstream.llm.simulator.LLMSimulator` engine (seeded randomness,
log-normal latency, RPM/TPM limits with 429s and ``retry-after``/``x-ratelimit-*`` headers,
injected 5xx, hangs, invalid and schema-invalid JSON, refusals) over HTTP, so the demo, the tests
and the benchmarks talk to it through the same OpenAI provider a user points at a real endpoint.

Endpoints:

* ``POST /v1/chat/completions`` (also ``/chat/completions``): the chat-completions API. Request
  bodies are checked the way the real API checks them (a ``tool`` message must answer a
  preceding ``tool_calls`` id, every tool call must be answered, ...), with ``400
  invalid_request_error`` answers in the API's error shape. The ``Idempotency-Key`` header, when
  present, is recorded as the call's step key.
* ``POST /v1/responses`` (also ``/responses``): the OpenAI Responses API, and ``POST
  /v1/messages``: the Anthropic Messages API (base URL :attr:`SimulatorServer.anthropic_url`).
  Both are translated to the engine's chat-completions form and back
  (:mod:`agentstream.llm.simulator.apis`).
* Every API streams when the body asks ``"stream": true``: server-sent events in the API's own
  format (:mod:`agentstream.llm.simulator.sse`), sent after the simulated latency.
* ``GET /v1/models``: the simulated model.
* ``GET /sim/stats``: counters (requests, answers by status, tokens, first and last times).
* ``GET /health``.

Run it from the command line with ``agentstream simulate-llm``, or in-process::

    with SimulatorServer(SimulatorConfig(rpm=600, tpm=60_000, latency_ms=800)) as sim:
        provider = OpenAIProvider(base_url=sim.url, api_key="sim")
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from agentstream.llm.simulator import apis as sim_apis
from agentstream.llm.simulator import sse as sim_sse
from agentstream.llm.simulator.model import CallLog, LLMSimulator, SimulatedReply, SimulatorConfig

__all__ = ["RecordedCall", "SimulatorServer", "validate_chat_body"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One request the server answered, as the server saw it.

    Attributes:
        at: Wall-clock seconds when the simulator decided the answer (its admission time).
        status: HTTP status answered.
        step_key: The ``Idempotency-Key`` header, if sent.
        body: The request body.
        headers: The request headers (lower-cased names).
        prompt_tokens: Prompt tokens counted (0 when not answered 200).
        completion_tokens: Completion tokens produced (0 when not answered 200).
    """

    at: float
    status: int
    step_key: str | None
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


def _invalid(message: str, param: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    }


def validate_chat_body(body: Any) -> dict[str, Any] | None:
    """Check a chat-completions request body as the API does; return an error body or None."""
    if not isinstance(body, dict):
        return _invalid("We could not parse the JSON body of your request: expected an object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _invalid("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid("'messages' must be a non-empty array", "messages")
    pending: set[str] = set()
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            return _invalid(f"Invalid value for 'messages[{i}].role'.", f"messages[{i}].role")
        role = m["role"]
        if pending and role != "tool":
            return _invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(pending))}",
                f"messages.[{i}].role",
            )
        if role == "tool":
            call_id = m.get("tool_call_id")
            if call_id not in pending:
                return _invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            pending.discard(call_id)
        calls = m.get("tool_calls") or []
        if calls and role != "assistant":
            return _invalid("only assistant messages may carry tool_calls", f"messages.[{i}]")
        for j, call in enumerate(calls):
            fn = call.get("function") if isinstance(call, dict) else None
            if (
                not isinstance(fn, dict)
                or not isinstance(call.get("id"), str)
                or not isinstance(fn.get("name"), str)
                or not isinstance(fn.get("arguments"), str)
            ):
                return _invalid(
                    "a tool call needs an id and a function with a name and arguments (a string)",
                    f"messages.[{i}].tool_calls.[{j}]",
                )
            pending.add(call["id"])
    if pending:
        return _invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            f"to each 'tool_call_id'. The following tool_call_ids did not have response "
            f"messages: {', '.join(sorted(pending))}",
            "messages",
        )
    for i, tool in enumerate(body.get("tools") or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
            return _invalid(
                "a tool must be {'type': 'function', 'function': {'name': ...}}", f"tools[{i}]"
            )
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            return _invalid("Invalid value for 'response_format.type'.", "response_format.type")
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not spec.get("name"):
                return _invalid(
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    "response_format.json_schema.name",
                )
    return None


class SimulatorServer:
    """Serves an :class:`LLMSimulator` as an OpenAI-compatible HTTP endpoint.

    Use it as a context manager (sync or async) to run it on a background thread, or await
    :meth:`serve` to run it on the current event loop.

    Args:
        config: Simulator behaviour (ignored when ``simulator`` is given).
        simulator: An existing engine to serve.
        host: Interface to listen on.
        port: Port (0 picks a free one; see :attr:`port` after start).
        call_log: SQLite file to append every call to (readable from other processes).
        hang_s: How long a simulated hang holds the request before answering 504.
        record: Keep every request in :attr:`calls` (tests and benchmarks read it).
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        simulator: LLMSimulator | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        call_log: str | Path | None = None,
        hang_s: float = 600.0,
        record: bool = True,
    ) -> None:
        self.simulator = simulator or LLMSimulator(config)
        self.host = host
        self.port = port
        self.hang_s = hang_s
        self.record = record
        self.calls: list[RecordedCall] = []
        self.counts: Counter[str] = Counter()
        self._call_log_path = call_log
        self._log: CallLog | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The OpenAI base URL of the server (``http://host:port/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        """The Anthropic base URL of the server (``http://host:port``)."""
        return f"http://{self.host}:{self.port}"

    # -- running -------------------------------------------------------------------------------

    def start(self) -> SimulatorServer:
        """Start serving on a background thread; return once the port is bound."""
        if self._thread is not None:
            return self
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._thread_main, name="llm-simulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self

    def stop(self) -> None:
        """Stop the background server (waits for it)."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)
        thread.join()
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> SimulatorServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self.serve(on_ready=self._ready.set))
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()
            loop.close()
            self._loop = None

    async def serve(
        self, stop: asyncio.Event | None = None, *, on_ready: Callable[[], None] | None = None
    ) -> None:
        """Serve on the current event loop until ``stop`` is set.

        Args:
            stop: Event that ends serving (default: serve until cancelled).
            on_ready: Zero-argument callable invoked once the port is bound.
        """
        self._stop = stop or asyncio.Event()
        if self._call_log_path is not None:
            self._log = CallLog(self._call_log_path)
        runner = web.AppRunner(
            self._application(), access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = int(runner.addresses[0][1])
            if on_ready is not None:
                on_ready()
            await self._stop.wait()
        finally:
            await runner.cleanup()
            if self._log is not None:
                self._log.close()
                self._log = None

    # -- HTTP ----------------------------------------------------------------------------------

    def _application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/responses", self._responses)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        app.router.add_get("/sim/stats", self._stats)
        app.router.add_get("/health", self._health)
        return app

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "chat")

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "responses")

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "messages")

    async def _serve(self, request: web.Request, api: str) -> web.StreamResponse:
        step_key = request.headers.get("Idempotency-Key")
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = await request.json()
        except ValueError:
            body = None
            reply = SimulatedReply(
                400, _invalid("We could not parse the JSON body of your request.")
            )
        else:
            invalid = _validate(api, body, headers)
            reply = (
                SimulatedReply(400, invalid)
                if invalid is not None
                else self.simulator.reply(_chat_form(api, body), step_key=step_key)
            )
        self._record(step_key, body, headers, reply)
        answer = _in_dialect(api, reply, body)
        if self._log is not None:
            logged = SimulatedReply(
                reply.status, {**reply.body, "id": answer.body.get("id", reply.body.get("id"))}
            )
            await asyncio.to_thread(self._log.append, step_key, logged)
        if reply.hang:
            await asyncio.sleep(self.hang_s)
        elif reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        out_headers = {"x-request-id": f"req_{uuid.uuid4().hex}", **answer.headers}
        if answer.status == 200 and isinstance(body, dict) and body.get("stream"):
            return await _stream(request, api, answer.body, body, out_headers)
        return web.json_response(answer.body, status=answer.status, headers=out_headers)

    def _record(
        self,
        step_key: str | None,
        body: Any,
        headers: dict[str, str],
        reply: SimulatedReply,
    ) -> None:
        usage = reply.body.get("usage") or {} if reply.status == 200 else {}
        with self._lock:
            self.counts["requests"] += 1
            self.counts[f"status_{reply.status}"] += 1
            if reply.hang:
                self.counts["hangs"] += 1
            self.counts["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            self.counts["completion_tokens"] += int(usage.get("completion_tokens") or 0)
            if self.record:
                self.calls.append(
                    RecordedCall(
                        at=time.time(),
                        status=reply.status,
                        step_key=step_key,
                        body=body,
                        headers=headers,
                        prompt_tokens=int(usage.get("prompt_tokens") or 0),
                        completion_tokens=int(usage.get("completion_tokens") or 0),
                    )
                )

    async def _models(self, request: web.Request) -> web.Response:
        model = self.simulator.config.model
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": model, "object": "model", "created": 0, "owned_by": "simulator"}],
            }
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def stats(self) -> dict[str, Any]:
        """Counters of what the server answered, plus the engine's own counters."""
        with self._lock:
            ok = [c for c in self.calls if c.status == 200]
            return {
                **dict(self.counts),
                "engine": dict(self.simulator.stats),
                "first_at": self.calls[0].at if self.calls else None,
                "first_ok_at": ok[0].at if ok else None,
                "last_ok_at": ok[-1].at if ok else None,
            }

    def accepted(self) -> list[RecordedCall]:
        """Calls answered 200, in order."""
        with self._lock:
            return [c for c in self.calls if c.status == 200]


def _validate(api: str, body: Any, headers: dict[str, str]) -> dict[str, Any] | None:
    if api == "chat":
        return validate_chat_body(body)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _invalid("you must provide a model parameter", "model")
    if api == "responses" and not body.get("input"):
        return _invalid("Missing required parameter: 'input'.", "input")
    if api == "messages":
        if not headers.get("anthropic-version"):
            return _invalid("anthropic-version header is required")
        if not isinstance(body.get("max_tokens"), int) or not body.get("messages"):
            return _invalid("max_tokens and a non-empty messages list are required")
    return None


def _chat_form(api: str, body: dict[str, Any]) -> dict[str, Any]:
    if api == "responses":
        return sim_apis.chat_from_responses(body)
    if api == "messages":
        return sim_apis.chat_from_messages(body)
    return body


def _in_dialect(api: str, reply: SimulatedReply, request: Any) -> SimulatedReply:
    """The engine's chat-shaped reply in the called API's shape."""
    if api == "chat":
        return reply
    if reply.status != 200:
        if api == "messages":
            body = sim_apis.anthropic_error(reply.status, reply.body)
            return SimulatedReply(reply.status, body, reply.headers)
        return reply
    if api == "responses":
        body = sim_apis.response_from_chat(reply.body, request)
    else:
        body = sim_apis.message_from_chat(reply.body)
    return SimulatedReply(200, body, reply.headers)


async def _stream(
    request: web.Request,
    api: str,
    answer: dict[str, Any],
    body: dict[str, Any],
    headers: dict[str, str],
) -> web.StreamResponse:
    if api == "responses":
        frames = sim_sse.response_events(answer)
    elif api == "messages":
        frames = sim_sse.message_events(answer)
    else:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frames = sim_sse.chat_chunks(answer, include_usage=include_usage)
    response = web.StreamResponse(
        status=200, headers={**headers, "content-type": "text/event-stream; charset=utf-8"}
    )
    await response.prepare(request)
    for frame in frames:
        await response.write(frame)
    await response.write_eof()
    return response
