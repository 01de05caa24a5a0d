"""The Anthropic provider against a local server speaking the Messages API wire format."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel

import agentstream
from agentstream import Context
from agentstream.failures import (
    ContextOverflowError,
    ProviderUnavailable,
    RateLimitedError,
    RefusalError,
)
from agentstream.llm.anthropic_provider import AnthropicProvider
from agentstream.llm.base import LLMRequest
from agentstream.llm.client import LLMClient
from agentstream.llm.openai_provider import idempotency_key
from agentstream.testing import AppHarness
from tests.llm.anthropic_server import AnthropicTestServer, error, message
from tests.llm.conftest import FAST

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order by id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}


class Verdict(BaseModel):
    category: str
    urgent: bool


@pytest.fixture
def server() -> Iterator[AnthropicTestServer]:
    srv = AnthropicTestServer().start()
    yield srv
    srv.stop()


def provider(server: AnthropicTestServer) -> AnthropicProvider:
    return AnthropicProvider(base_url=server.url, api_key="test-key")


async def test_messages_tools_and_tool_results_are_translated_to_the_messages_api(server):
    server.answer(
        message(
            [
                {"type": "text", "text": "Let me check both."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A",
                    "name": "lookup_order",
                    "input": {"order_id": "o-3"},
                },
            ],
            stop_reason="tool_use",
        )
    )
    request = LLMRequest(
        model="claude-sonnet-4-6",
        messages=[
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": "Where are orders o-1 and o-2?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_prev1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_id": "o-1"}'},
                    },
                    {
                        "id": "toolu_prev2",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_id": "o-2"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_prev1", "content": "o-1 shipped"},
            {"role": "tool", "tool_call_id": "toolu_prev2", "content": "o-2 delayed"},
            {"role": "user", "content": "And o-3?"},
        ],
        tools=[LOOKUP],
        tool_choice="required",
        temperature=0.2,
        max_tokens=300,
        params={"stop": "END", "top_k": 5},
    )
    p = provider(server)
    response = await p.complete(request, step_key="agent/evt/0")
    await p.aclose()

    (got,) = server.received
    assert got.status == 200  # the server found nothing the API would reject
    body = got.body
    assert body["system"] == "You are a support agent."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {
            "type": "tool_use",
            "id": f"toolu_prev{n}",
            "name": "lookup_order",
            "input": {"order_id": f"o-{n}"},
        }
        for n in (1, 2)
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_prev1", "content": "o-1 shipped"},
        {"type": "tool_result", "tool_use_id": "toolu_prev2", "content": "o-2 delayed"},
        {"type": "text", "text": "And o-3?"},
    ]
    assert body["tools"] == [
        {
            "name": "lookup_order",
            "description": "Find an order by id.",
            "input_schema": LOOKUP["function"]["parameters"],
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    assert (body["temperature"], body["max_tokens"], body["top_k"]) == (0.2, 300, 5)
    assert body["stop_sequences"] == ["END"]
    assert got.headers["idempotency-key"] == idempotency_key("agent/evt/0")
    assert "test-key" in (got.headers.get("x-api-key") or got.headers["authorization"])
    assert response.finish_reason == "tool_calls"
    assert response.text == "Let me check both."
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("toolu_01A", "lookup_order", '{"order_id": "o-3"}')
    ]
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (25, 12)
    assert response.cost_usd == pytest.approx((25 * 3.0 + 12 * 15.0) / 1e6)


async def test_structured_output_rides_on_a_forced_tool_and_is_re_asked_when_invalid(
    server, db_url
):
    server.answer(
        message(
            [{"type": "tool_use", "id": "toolu_1", "name": "Verdict", "input": {"category": "x"}}],
            stop_reason="tool_use",
        )
    )
    server.answer(
        message(
            [
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "Verdict",
                    "input": {"category": "billing", "urgent": True},
                }
            ],
            stop_reason="tool_use",
        )
    )
    app = agentstream.App("anth", broker=db_url, llm=provider(server), config=FAST)

    @app.agent(source="tickets", output="verdicts", model="claude-sonnet-4-6")
    async def triage(ctx: Context, payload: dict) -> Verdict:
        return await ctx.llm.parse(Verdict, system="Classify.", user=payload["text"])

    async with AppHarness(app) as h:
        await h.produce("tickets", [{"text": "charged twice"}])
        await h.wait_drained()
        (out,) = h.read("verdicts")

    assert Verdict.model_validate_json(out.value) == Verdict(category="billing", urgent=True)
    first, second = server.received
    assert (first.status, second.status) == (200, 200)
    (tool,) = first.body["tools"]
    assert tool["name"] == "Verdict"
    assert tool["input_schema"] == Verdict.model_json_schema()
    assert first.body["tool_choice"] == {"type": "tool", "name": "Verdict"}
    reask = second.body["messages"]
    assert reask[1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": '{"category": "x"}'}],
    }
    assert "urgent" in reask[2]["content"][0]["text"]  # the validation error is sent back


async def test_refusals_and_context_overflow_are_classified_not_retried(server):
    server.answer(message([{"type": "text", "text": "I can't help."}], stop_reason="refusal"))
    server.answer(message([], stop_reason="model_context_window_exceeded"))
    server.answer(
        error("invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"),
        status=400,
    )
    p = provider(server)
    request = LLMRequest(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x"}])
    refused = await p.complete(request, step_key="a/e/0")
    assert (refused.finish_reason, refused.refusal, refused.text) == (
        "refusal",
        "I can't help.",
        None,
    )
    for _ in range(2):
        with pytest.raises(ContextOverflowError):
            await p.complete(request, step_key="a/e/1")
    await p.aclose()
    assert len(server.received) == 3

    class Recorded:
        async def call_llm(self, request, *, name, prompt_version):
            return refused

    with pytest.raises(RefusalError):
        await LLMClient(Recorded(), model="m", prompt_version=None).parse(Verdict, user="x")


async def test_rate_limits_and_overload_are_transient_and_headers_are_read(server):
    server.answer(
        message([{"type": "text", "text": "ok"}]),
        anthropic_ratelimit_requests_limit="50",
        anthropic_ratelimit_requests_remaining="49",
        anthropic_ratelimit_requests_reset="2030-01-01T00:00:00Z",
        anthropic_ratelimit_tokens_limit="40000",
        anthropic_ratelimit_tokens_remaining="39000",
    )
    server.answer(
        error("rate_limit_error", "Number of request tokens has exceeded your per-minute limit"),
        status=429,
        retry_after="7",
    )
    server.answer(error("overloaded_error", "Overloaded"), status=529)
    p = provider(server)
    request = LLMRequest(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x"}])
    ok = await p.complete(request, step_key="a/e/0")
    with pytest.raises(RateLimitedError) as limited:
        await p.complete(request, step_key="a/e/1")
    with pytest.raises(ProviderUnavailable):
        await p.complete(request, step_key="a/e/2")
    await p.aclose()
    assert limited.value.retry_after == 7.0
    assert len(server.received) == 3  # SDK retries are off
    assert ok.rate_limits is not None
    assert (ok.rate_limits.limit_requests, ok.rate_limits.remaining_tokens) == (50, 39000)
    assert ok.rate_limits.limit_tokens == 40000


async def test_a_translation_the_api_would_reject_is_caught_by_the_wire_check(server):
    p = provider(server)
    dangling = LLMRequest(
        model="claude-sonnet-4-6",
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
        ],
    )
    with pytest.raises(RuntimeError, match="tool_result"):
        await p.complete(dangling, step_key="a/e/0")
    await p.aclose()
