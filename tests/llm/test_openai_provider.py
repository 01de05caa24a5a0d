"""The OpenAI-compatible provider against the simulator's chat-completions HTTP server."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from agentstream import Context
from agentstream.failures import (
    ContextOverflowError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitedError,
)
from agentstream.journal import StepKind
from agentstream.llm.base import LLMRequest
from agentstream.llm.openai_provider import OpenAIProvider, idempotency_key
from agentstream.testing import AppHarness
from tests.llm.conftest import open_store
from tests.services import free_port

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
    score: int


def ask(text: str = "hello") -> LLMRequest:
    return LLMRequest(model="sim-1", messages=[{"role": "user", "content": text}])


async def test_a_tool_call_round_trip_goes_over_the_wire_in_the_chat_completions_shape(
    simulator, make_app, db_path
):
    sim = simulator()
    app = make_app(sim)

    @app.agent(source="orders")
    async def support(ctx: Context, payload: dict) -> dict:
        conversation = [{"role": "user", "content": f"Where is order {payload['id']}?"}]
        first = await ctx.llm(messages=conversation, tools=[LOOKUP], tool_choice="required")
        conversation.append(first.message())
        for call in first.tool_calls:
            args = json.loads(call.arguments)
            conversation.append(
                {"role": "tool", "tool_call_id": call.id, "content": f"found {args['order_id']}"}
            )
        final = await ctx.llm(messages=conversation, tools=[LOOKUP], tool_choice="none")
        return {"calls": [c.name for c in first.tool_calls], "answer": final.text}

    async with AppHarness(app) as h:
        await h.produce("orders", [{"id": "o-1"}], headers=lambda v: {"id": "evt-1"})
        await h.wait_drained()

    first, second = sim.calls
    assert (first.status, second.status) == (200, 200)  # the server checked the tool pairing
    assert first.body["tools"] == [LOOKUP] and first.body["tool_choice"] == "required"
    assistant, tool = second.body["messages"][1:]
    call = assistant["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "lookup_order"
    assert tool == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": f"found {json.loads(call['function']['arguments'])['order_id']}",
    }
    assert first.headers["idempotency-key"] == idempotency_key("support/evt-1/0")
    assert second.headers["idempotency-key"] == idempotency_key("support/evt-1/1")
    store = await open_store(db_path)
    steps = await store.steps("support", "evt-1")
    await store.close()
    assert [s.kind for s in steps] == [StepKind.LLM, StepKind.LLM]
    assert steps[0].result["tool_calls"][0]["id"] == call["id"]
    assert steps[0].result["raw"]["choices"][0]["finish_reason"] == "tool_calls"
    assert steps[0].meta["prompt_tokens"] > 0 and steps[0].meta["cost_usd"] > 0


async def test_structured_output_is_requested_as_a_json_schema_and_validated(
    simulator, make_app, db_path
):
    sim = simulator()
    app = make_app(sim)

    @app.agent(source="tickets", output="verdicts")
    async def triage(ctx: Context, payload: dict) -> Verdict:
        return await ctx.llm.parse(Verdict, system="Classify.", user=payload["text"])

    async with AppHarness(app) as h:
        await h.produce("tickets", [{"text": "my card was charged twice"}])
        await h.wait_drained()
        out = h.read("verdicts")

    (call,) = sim.calls
    fmt = call.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Verdict"
    assert fmt["json_schema"]["schema"]["required"] == ["category", "urgent", "score"]
    Verdict.model_validate_json(out[0].value)


async def test_a_429_is_a_rate_limited_error_with_the_server_s_retry_after_and_no_sdk_retry(
    simulator,
):
    sim = simulator(rpm=1)
    provider = OpenAIProvider(base_url=sim.url, api_key="sim")
    ok = await provider.complete(ask(), step_key="a/e/0")
    with pytest.raises(RateLimitedError) as caught:
        await provider.complete(ask(), step_key="a/e/1")
    await provider.aclose()
    assert 55 < caught.value.retry_after <= 60
    assert [c.status for c in sim.calls] == [200, 429]  # max_retries=0: one request each
    assert ok.rate_limits is not None
    assert (ok.rate_limits.limit_requests, ok.rate_limits.remaining_requests) == (1, 0)


async def test_server_errors_timeouts_and_context_overflow_are_classified(simulator):
    failing = simulator(error_rate=1.0)
    hanging = simulator(timeout_rate=1.0)
    small = simulator(context_window=10)
    for sim, request, error in (
        (failing, ask(), ProviderUnavailable),
        (hanging, ask(), ProviderTimeout),
        (small, ask("word " * 200), ContextOverflowError),
    ):
        provider = OpenAIProvider(base_url=sim.url, api_key="sim", timeout_s=0.5)
        with pytest.raises(error):
            await provider.complete(request, step_key="a/e/0")
        await provider.aclose()
        assert len(sim.calls) == 1


async def test_an_unreachable_endpoint_is_provider_unavailable():
    provider = OpenAIProvider(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="x")
    with pytest.raises(ProviderUnavailable):
        await provider.complete(ask(), step_key="a/e/0")
    await provider.aclose()


async def test_a_request_the_api_would_reject_is_not_retried_as_transient(simulator):
    sim = simulator()
    provider = OpenAIProvider(base_url=sim.url, api_key="sim")
    orphan = LLMRequest(
        model="sim-1", messages=[{"role": "tool", "tool_call_id": "nope", "content": "x"}]
    )
    with pytest.raises(RuntimeError, match="400"):
        await provider.complete(orphan, step_key="a/e/0")
    await provider.aclose()
