"""The journaled transport: SDK model calls are journaled steps, replayed without a request."""

from __future__ import annotations

import json

import pytest

from agentstream import Context, NoCurrentContext, ProviderUnavailable, Retry
from agentstream.failures import agentstream_cause
from agentstream.integrations import anthropic_client, openai_client
from agentstream.testing import run_agent
from tests.runtime.helpers import Ticket, make_app

NO_WAIT = Retry(attempts=3, backoff_initial=0.0, backoff_max=0.0)


async def run_twice(app, agent, ticket):
    """Attempt 1 fails after its model calls; attempt 2 must replay them."""
    first = await run_agent(app, agent, ticket)
    assert first.outcome == "retry", first
    return await run_agent(app, agent, ticket, offset=1)


async def test_openai_chat_and_responses_calls_replay_from_the_journal_after_a_failure(
    db_url, simulator
):
    sim = simulator(tool_call_rate=0.0)
    client = openai_client(base_url=sim.url, api_key="sim")
    app = make_app(db_url)
    seen: list[list[str]] = []

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, retry=NO_WAIT)
    async def triage(ctx: Context, t: Ticket) -> list[str]:
        chat = await client.chat.completions.create(
            model="sim-1", messages=[{"role": "user", "content": t.text}]
        )
        stream = await client.chat.completions.create(
            model="sim-1",
            messages=[{"role": "user", "content": t.text + "?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        response = await client.responses.create(model="sim-1", input=t.text, stream=False)
        texts = [chat.choices[0].message.content or "", streamed, response.output_text]
        seen.append(texts)
        if ctx.attempt == 1:
            raise ProviderUnavailable("crash after the model calls")
        return texts

    run = await run_twice(app, "triage", Ticket(ticket_id="T1", customer_id="c1"))
    assert run.outcome == "completed"
    assert len(sim.accepted()) == 3, "attempt 2 sent no request"
    assert seen[0] == seen[1] == run.result
    assert [(s.kind, s.name) for s in run.steps] == [
        ("llm", "openai.chat"),
        ("llm", "openai.chat"),
        ("llm", "openai.responses"),
    ]
    assert all(s.meta["total_tokens"] > 0 for s in run.steps)
    await client.close()


async def test_a_streamed_answer_replays_the_same_chunks_byte_for_byte(db_url, simulator):
    sim = simulator(tool_call_rate=0.0)
    client = anthropic_client(base_url=sim.anthropic_url, api_key="sim")
    app = make_app(db_url)
    chunks: list[list[bytes]] = []

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, retry=NO_WAIT)
    async def triage(ctx: Context, t: Ticket) -> str:
        async with client.messages.with_streaming_response.create(
            model="sim-1",
            max_tokens=100,
            messages=[{"role": "user", "content": t.text}],
            stream=True,
        ) as response:
            chunks.append([c async for c in response.iter_bytes()])
        async with client.messages.stream(
            model="sim-1", max_tokens=100, messages=[{"role": "user", "content": "again"}]
        ) as stream:
            final = await stream.get_final_message()
        if ctx.attempt == 1:
            raise ProviderUnavailable("crash")
        return final.content[0].text  # type: ignore[union-attr]

    run = await run_twice(app, "triage", Ticket(ticket_id="T2", customer_id="c1"))
    assert run.outcome == "completed" and run.result
    assert len(sim.accepted()) == 2
    assert chunks[0] == chunks[1] and len(chunks[0]) >= 1
    assert b"message_stop" in b"".join(chunks[0])
    await client.close()


async def test_a_changed_request_is_a_non_determinism_dead_letter_not_a_silent_replay(
    db_url, simulator
):
    sim = simulator()
    client = openai_client(base_url=sim.url, api_key="sim")
    app = make_app(db_url)

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, retry=NO_WAIT)
    async def triage(ctx: Context, t: Ticket) -> None:
        await client.chat.completions.create(
            model="sim-1", messages=[{"role": "user", "content": f"attempt {ctx.attempt}"}]
        )
        if ctx.attempt == 1:
            raise ProviderUnavailable("crash")

    run = await run_twice(app, "triage", Ticket(ticket_id="T3", customer_id="c1"))
    assert run.outcome == "dead_lettered"
    assert run.dead_letter is not None
    assert run.dead_letter["failure_class"] == "nondeterminism"
    assert len(sim.accepted()) == 1
    await client.close()


async def test_key_order_and_headers_do_not_change_the_fingerprint(db_url, simulator):
    sim = simulator(tool_call_rate=0.0)
    client = openai_client(base_url=sim.url, api_key="sim")
    app = make_app(db_url)

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, retry=NO_WAIT)
    async def triage(ctx: Context, t: Ticket) -> str:
        body = {"model": "sim-1", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
        if ctx.attempt == 2:
            body = dict(reversed(list(body.items())))
        reply = await client.chat.completions.create(
            **body, extra_headers={"x-trace": f"t{ctx.attempt}"}
        )
        if ctx.attempt == 1:
            raise ProviderUnavailable("crash")
        return reply.id

    run = await run_twice(app, "triage", Ticket(ticket_id="T4", customer_id="c1"))
    assert run.outcome == "completed"
    assert len(sim.accepted()) == 1
    assert json.loads(json.dumps(run.result)) == run.steps[0].result["id"]
    await client.close()


async def test_outside_a_handler_a_model_call_fails_clearly(simulator):
    sim = simulator()
    client = openai_client(base_url=sim.url, api_key="sim")
    with pytest.raises(Exception) as info:
        await client.chat.completions.create(
            model="sim-1", messages=[{"role": "user", "content": "hi"}]
        )
    assert isinstance(agentstream_cause(info.value), NoCurrentContext)
    assert sim.accepted() == []
    await client.close()
