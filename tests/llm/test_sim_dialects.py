"""The simulator answers the Responses and Messages APIs, and streams, to the real SDKs."""

from __future__ import annotations

import json

import anthropic
import openai

TOOLS_CHAT = [
    {
        "type": "function",
        "function": {
            "name": "refund",
            "description": "Refund an order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "cents": {"type": "integer"}},
                "required": ["order_id", "cents"],
            },
        },
    }
]
TOOLS_RESPONSES = [{"type": "function", **TOOLS_CHAT[0]["function"]}]
TOOLS_ANTHROPIC = [
    {
        "name": "refund",
        "description": "Refund an order",
        "input_schema": TOOLS_CHAT[0]["function"]["parameters"],
    }
]


async def test_chat_completions_stream_in_chunks_that_add_up_to_the_answer(simulator):
    sim = simulator(tool_call_rate=0.0)
    client = openai.AsyncOpenAI(base_url=sim.url, api_key="sim", max_retries=0)
    stream = await client.chat.completions.create(
        model="sim-1",
        messages=[{"role": "user", "content": "where is my order?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in deltas if c.choices)
    assert len(deltas) > 3 and text.endswith(".")
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens > 0
    await client.close()


async def test_responses_api_answers_text_tool_calls_and_a_tool_result_turn(simulator):
    sim = simulator(tool_call_rate=1.0)
    client = openai.AsyncOpenAI(base_url=sim.url, api_key="sim", max_retries=0)
    first = await client.responses.create(
        model="sim-1", instructions="You help.", input="refund order 7", tools=TOOLS_RESPONSES
    )
    call = first.output[0]
    assert call.type == "function_call" and call.name == "refund"
    assert set(json.loads(call.arguments)) == {"order_id", "cents"}
    second = await client.responses.create(
        model="sim-1",
        input=[
            {"role": "user", "content": "refund order 7"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "done"},
        ],
        tools=TOOLS_RESPONSES,
    )
    assert second.output_text and second.usage is not None and second.usage.input_tokens > 0
    assert sim.accepted()[-1].body["input"][-1]["type"] == "function_call_output"
    await client.close()


async def test_responses_api_streams_events_ending_in_the_completed_response(simulator):
    sim = simulator(tool_call_rate=0.0)
    client = openai.AsyncOpenAI(base_url=sim.url, api_key="sim", max_retries=0)
    stream = await client.responses.create(model="sim-1", input="hello", stream=True)
    events = [e async for e in stream]
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text
    await client.close()


async def test_anthropic_messages_answer_tool_use_then_text_and_stream(simulator):
    sim = simulator(tool_call_rate=1.0)
    client = anthropic.AsyncAnthropic(base_url=sim.anthropic_url, api_key="sim", max_retries=0)
    first = await client.messages.create(
        model="sim-1",
        max_tokens=200,
        system="You help.",
        messages=[{"role": "user", "content": "refund order 7"}],
        tools=TOOLS_ANTHROPIC,
    )
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use" and set(use.input) == {"order_id", "cents"}
    follow_up = [
        {"role": "user", "content": "refund order 7"},
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "done"}],
        },
    ]
    async with client.messages.stream(
        model="sim-1", max_tokens=200, messages=follow_up, tools=TOOLS_ANTHROPIC
    ) as stream:
        pieces = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert "".join(pieces) == final.content[0].text and len(pieces) > 1
    assert final.usage.output_tokens > 0
    await client.close()


async def test_anthropic_rate_limits_come_back_in_the_messages_error_shape(simulator):
    sim = simulator(rpm=1, window_s=60)
    client = anthropic.AsyncAnthropic(base_url=sim.anthropic_url, api_key="sim", max_retries=0)
    msgs = [{"role": "user", "content": "hi"}]
    await client.messages.create(model="sim-1", max_tokens=50, messages=msgs)
    try:
        await client.messages.create(model="sim-1", max_tokens=50, messages=msgs)
    except anthropic.RateLimitError as exc:
        assert exc.response.headers["retry-after"]
        assert exc.body["error"]["type"] == "rate_limit_error"
    else:
        raise AssertionError("expected a 429")
    await client.close()
