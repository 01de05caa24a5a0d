"""The LLM simulator: a stochastic stand-in for a chat-completions model.

It is a product component for demos, tests and benchmarks, and is named as a simulator
everywhere it appears. It speaks the chat-completions wire format and behaves like a real,
busy provider:

* answers are random: free text, a random instance of a requested JSON schema, or random tool
  calls; the same prompt twice gives different answers, as real models do;
* randomness is seeded (``seed``) so a run can be reproduced, or drawn from the OS (``None``);
* latency follows a log-normal distribution around a median;
* requests-per-minute and tokens-per-minute limits are enforced over a sliding minute with 429s
  that carry ``retry-after`` and ``x-ratelimit-*`` headers;
* 5xx answers, hangs (timeouts), invalid JSON, schema-invalid JSON and refusals can be injected
  at chosen rates;
* every call can be appended to a call log (a SQLite file) with its step key, so tests can count
  model calls from outside the worker process.

This module is the engine; :mod:`agentstream.llm.simulator.server` serves it over HTTP as an
OpenAI-compatible endpoint and :mod:`agentstream.llm.simulator.provider` calls it in-process.
"""

from __future__ import annotations

import collections
import json
import math
import os
import random
import sqlite3
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentstream.llm.tokens import count_tokens, estimate_prompt_tokens

__all__ = [
    "CallLog",
    "LLMSimulator",
    "SimulatedReply",
    "SimulatorConfig",
    "count_tokens",
    "random_instance",
]

_WORDS = (
    "customer account refund order delayed shipping invoice billing issue resolved escalate "
    "priority request review urgent standard damaged missing charge duplicate subscription "
    "cancel upgrade password access login error payment confirm verify policy warranty"
).split()


@dataclass
class SimulatorConfig:
    """How the simulated model behaves.

    Attributes:
        model: Model name it reports.
        seed: Seed for all randomness; None draws from the OS.
        latency_ms: Median latency.
        latency_sigma: Log-normal shape (0 makes latency constant).
        rpm: Requests per window before 429s (None: unlimited).
        tpm: Tokens per window before 429s (None: unlimited).
        window_s: Length of the sliding rate-limit window: 60 for per-minute limits as real
            providers have them; tests use shorter windows to run quickly.
        error_rate: Share of requests answered with a 5xx.
        timeout_rate: Share of requests that hang past the client's timeout.
        invalid_json_rate: Share of structured answers that are not valid JSON.
        schema_invalid_rate: Share of structured answers that are valid JSON but violate the
            requested schema (a required field missing).
        refusal_rate: Share of answers that are refusals.
        tool_call_rate: Chance of a tool call when tools are offered and the last message is
            not a tool result.
        tool_calls_per_answer: Tool calls in one answer that calls tools (each a random tool
            with random arguments; more than one asks the client for parallel tool calls).
        context_window: Prompt tokens above this get a context-length error.
        max_completion_tokens: Longest free-text answer in tokens.
        reported_cost_usd: When set, every answer carries this cost in the
            ``x-litellm-response-cost`` header, as a LiteLLM proxy reports it.
    """

    model: str = "sim-1"
    seed: int | None = None
    latency_ms: float = 20.0
    latency_sigma: float = 0.5
    rpm: int | None = None
    tpm: int | None = None
    window_s: float = 60.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    invalid_json_rate: float = 0.0
    schema_invalid_rate: float = 0.0
    refusal_rate: float = 0.0
    tool_call_rate: float = 0.7
    tool_calls_per_answer: int = 1
    context_window: int = 128_000
    max_completion_tokens: int = 60
    reported_cost_usd: float | None = None


@dataclass
class SimulatedReply:
    """What the simulator answers: an HTTP status, headers, body, and how long to take."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    hang: bool = False


class _Window:
    """Requests and tokens accepted over the last ``length_s`` seconds.

    Each entry is ``(time, tokens, requests)``: a request counts once, when it is admitted, with
    its prompt tokens; its completion tokens are added as a token-only entry when it is answered.
    """

    def __init__(self, length_s: float = 60.0) -> None:
        self.length_s = length_s
        self.entries: collections.deque[tuple[float, int, int]] = collections.deque()
        self.tokens = 0
        self.requests = 0

    def trim(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - self.length_s:
            _, tokens, requests = self.entries.popleft()
            self.tokens -= tokens
            self.requests -= requests

    def add(self, now: float, tokens: int, requests: int) -> None:
        self.entries.append((now, tokens, requests))
        self.tokens += tokens
        self.requests += requests

    def reset_in(self, now: float) -> float:
        """Seconds until the oldest entry leaves the window."""
        return max(0.0, self.entries[0][0] + self.length_s - now) if self.entries else 0.0


class LLMSimulator:
    """The simulated model. Thread-safe; one instance serves any number of clients.

    Args:
        config: Behaviour settings.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self, config: SimulatorConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or SimulatorConfig()
        self._rng = random.Random(self.config.seed)
        self._clock = clock
        self._lock = threading.Lock()
        self._window = _Window(self.config.window_s)
        self._counter = 0
        self.stats: collections.Counter[str] = collections.Counter()

    def reply(self, body: dict[str, Any], *, step_key: str | None = None) -> SimulatedReply:
        """Answer one chat-completions request body."""
        with self._lock:
            return self._reply(body)

    def _reply(self, body: dict[str, Any]) -> SimulatedReply:
        cfg, rng = self.config, self._rng
        self.stats["requests"] += 1
        prompt_tokens = estimate_prompt_tokens(body)
        delay = self._latency()
        if prompt_tokens > cfg.context_window:
            self.stats["context_overflow"] += 1
            return SimulatedReply(
                400,
                _error(
                    f"This model's maximum context length is {cfg.context_window} tokens; "
                    f"your messages resulted in {prompt_tokens} tokens.",
                    "invalid_request_error",
                    "context_length_exceeded",
                ),
                delay_s=min(delay, 0.01),
            )
        limited = self._rate_limit(prompt_tokens, int(body.get("max_tokens") or 0))
        if limited is not None:
            self.stats["rate_limited"] += 1
            return limited
        if rng.random() < cfg.timeout_rate:
            self.stats["timeouts"] += 1
            return SimulatedReply(504, _error("simulated timeout", "timeout"), hang=True)
        if rng.random() < cfg.error_rate:
            self.stats["server_errors"] += 1
            return SimulatedReply(
                rng.choice((500, 502, 503)),
                _error("simulated server error", "server_error"),
                delay_s=delay,
            )
        self._counter += 1
        response = self._answer(body, prompt_tokens)
        self._window.add(self._clock(), response["usage"]["completion_tokens"], 0)
        self.stats["ok"] += 1
        headers = self._limit_headers()
        if cfg.reported_cost_usd is not None:
            headers["x-litellm-response-cost"] = repr(cfg.reported_cost_usd)
        return SimulatedReply(200, response, headers, delay_s=delay)

    def _latency(self) -> float:
        cfg = self.config
        if cfg.latency_ms <= 0:
            return 0.0
        if cfg.latency_sigma <= 0:
            return cfg.latency_ms / 1000.0
        return self._rng.lognormvariate(math.log(cfg.latency_ms), cfg.latency_sigma) / 1000.0

    def _rate_limit(self, prompt_tokens: int, max_tokens: int) -> SimulatedReply | None:
        cfg = self.config
        now = self._clock()
        win = self._window
        win.trim(now)
        over_requests = cfg.rpm is not None and win.requests >= cfg.rpm
        over_tokens = cfg.tpm is not None and win.tokens + prompt_tokens > cfg.tpm
        if not (over_requests or over_tokens):
            win.add(now, prompt_tokens, 1)
            return None
        retry_after = self._seconds_until_room(now, prompt_tokens, over_requests)
        headers = self._limit_headers()
        headers["retry-after"] = f"{max(1, math.ceil(retry_after))}"
        headers["retry-after-ms"] = f"{int(retry_after * 1000)}"
        kind = "requests" if over_requests else "tokens"
        return SimulatedReply(
            429,
            _error(
                f"Rate limit reached for {cfg.model} on {kind} per min (RPM: limit "
                f"{cfg.rpm}, TPM: limit {cfg.tpm}). Please try again in {retry_after:.3f}s.",
                kind,
                "rate_limit_exceeded",
            ),
            headers,
        )

    def _seconds_until_room(self, now: float, tokens: int, over_requests: bool) -> float:
        cfg, win = self.config, self._window
        if over_requests and cfg.rpm is not None:
            excess = win.requests - cfg.rpm + 1
            for at, _, requests in win.entries:
                excess -= requests
                if excess <= 0:
                    return max(0.001, at + win.length_s - now)
            return win.length_s
        freed = 0
        for at, n, _ in win.entries:
            freed += n
            if cfg.tpm is not None and win.tokens - freed + tokens <= cfg.tpm:
                return max(0.001, at + win.length_s - now)
        return win.length_s

    def _limit_headers(self) -> dict[str, str]:
        cfg, win = self.config, self._window
        headers: dict[str, str] = {}
        reset = win.reset_in(self._clock())
        if cfg.rpm is not None:
            headers["x-ratelimit-limit-requests"] = str(cfg.rpm)
            headers["x-ratelimit-remaining-requests"] = str(max(0, cfg.rpm - win.requests))
            headers["x-ratelimit-reset-requests"] = f"{reset:.3f}s"
        if cfg.tpm is not None:
            headers["x-ratelimit-limit-tokens"] = str(cfg.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(max(0, cfg.tpm - win.tokens))
            headers["x-ratelimit-reset-tokens"] = f"{reset:.3f}s"
        return headers

    def _answer(self, body: dict[str, Any], prompt_tokens: int) -> dict[str, Any]:
        cfg, rng = self.config, self._rng
        messages = body.get("messages") or []
        tools = body.get("tools") or []
        fmt = body.get("response_format") or {}
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        wants_tool = (
            bool(tools)
            and body.get("tool_choice") != "none"
            and (
                body.get("tool_choice") == "required"
                or (
                    (not messages or messages[-1].get("role") != "tool")
                    and rng.random() < cfg.tool_call_rate
                )
            )
        )
        if rng.random() < cfg.refusal_rate:
            message["refusal"] = "I'm sorry, but I can't help with that request."
            finish = "stop"
        elif wants_tool:
            message["tool_calls"] = []
            for _ in range(max(1, cfg.tool_calls_per_answer)):
                fn = rng.choice(tools)
                fn = fn.get("function", fn)
                args = random_instance(fn.get("parameters") or {"type": "object"}, rng)
                message["tool_calls"].append(
                    {
                        "id": f"call_{uuid.UUID(int=rng.getrandbits(128)).hex[:24]}",
                        "type": "function",
                        "function": {
                            "name": fn.get("name", "tool"),
                            "arguments": json.dumps(args),
                        },
                    }
                )
            finish = "tool_calls"
        elif fmt.get("type") in ("json_schema", "json_object"):
            schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
            instance = random_instance(schema, rng)
            if rng.random() < cfg.schema_invalid_rate:
                self.stats["schema_invalid"] += 1
                instance = _break_schema(instance, schema)
            text = json.dumps(instance)
            if rng.random() < cfg.invalid_json_rate:
                self.stats["invalid_json"] += 1
                text = text[: max(1, len(text) // 2)] + rng.choice(("", "}}", "<eos>", ",,"))
            message["content"] = text
        else:
            n = rng.randint(5, max(5, cfg.max_completion_tokens))
            message["content"] = " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."
        completion_text = (
            message["content"] or message["refusal"] or json.dumps(message.get("tool_calls"))
        )
        completion_tokens = count_tokens(completion_text or "")
        return {
            "id": f"chatcmpl-sim-{os.getpid()}-{self._counter}-{uuid.uuid4().hex[:8]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or cfg.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _break_schema(instance: Any, schema: dict[str, Any]) -> Any:
    """Valid JSON that violates the schema: a required field dropped, or the wrong type."""
    required = schema.get("required") or []
    if isinstance(instance, dict) and required:
        broken = dict(instance)
        broken.pop(required[0], None)
        return broken
    return {"unexpected": instance} if not isinstance(instance, dict) else [instance]


def _error(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code}}


def random_instance(schema: dict[str, Any], rng: random.Random, defs: Any = None) -> Any:
    """A random value satisfying a (pydantic-style) JSON schema."""
    defs = defs if defs is not None else schema.get("$defs") or schema.get("definitions") or {}
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return random_instance(defs.get(name, {}), rng, defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    for combo in ("anyOf", "oneOf"):
        if combo in schema:
            options = [s for s in schema[combo] if s.get("type") != "null"] or schema[combo]
            return random_instance(rng.choice(options), rng, defs)
    if "allOf" in schema:
        return random_instance(schema["allOf"][0], rng, defs)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: random_instance(sub, rng, defs) for name, sub in props.items()}
    if kind == "array":
        lo = int(schema.get("minItems", 0))
        hi = int(schema.get("maxItems", max(lo, 3)))
        return [
            random_instance(schema.get("items") or {}, rng, defs)
            for _ in range(rng.randint(lo, hi))
        ]
    if kind == "integer":
        lo = int(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
        hi = int(schema.get("maximum", schema.get("exclusiveMaximum", lo + 10_001) - 1))
        return rng.randint(lo, max(lo, hi))
    if kind == "number":
        low = float(schema.get("minimum", 0.0))
        high = float(schema.get("maximum", low + 1.0))
        return round(rng.uniform(low, high), 4)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    lo = int(schema.get("minLength", 1))
    hi = int(schema.get("maxLength", max(lo, 24)))
    if schema.get("format") == "date-time":
        return "2026-01-01T00:00:00Z"
    words: list[str] = []
    while len(" ".join(words)) < lo or not words:
        words.append(rng.choice(_WORDS))
    text = " ".join(words)
    while len(text) < hi and rng.random() < 0.6:
        text += " " + rng.choice(_WORDS)
    text = text[:hi] if len(text) > hi else text
    if len(text) < lo:
        text += "".join(rng.choice(string.ascii_lowercase) for _ in range(lo - len(text)))
    return text


class CallLog:
    """An append-only log of simulated calls in a SQLite file, readable by other processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, timeout=30.0, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS sim_calls (id INTEGER PRIMARY KEY, at REAL NOT NULL, "
            "pid INTEGER NOT NULL, step_key TEXT, response_id TEXT, status INTEGER NOT NULL, "
            "model TEXT, prompt_tokens INTEGER, completion_tokens INTEGER)"
        )

    def append(self, step_key: str | None, reply: SimulatedReply) -> None:
        """Record one call durably."""
        usage = reply.body.get("usage") or {}
        with self._lock:
            self._conn.execute(
                "INSERT INTO sim_calls (at, pid, step_key, response_id, status, model, "
                "prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    os.getpid(),
                    step_key,
                    reply.body.get("id"),
                    reply.status,
                    reply.body.get("model"),
                    usage.get("prompt_tokens"),
                    usage.get("completion_tokens"),
                ),
            )

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()

    @staticmethod
    def read(path: str | Path) -> list[dict[str, Any]]:
        """All calls in a log file, in order."""
        conn = sqlite3.connect(str(path))
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM sim_calls ORDER BY id")]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()
