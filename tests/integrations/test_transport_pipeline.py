"""SDK calls through the transport get the ctx.llm pipeline: admission, 429 waits, budgets."""

from __future__ import annotations

import agentstream
from agentstream import Budget, Context, Middleware, Retry
from agentstream.integrations import openai_client
from agentstream.llm.admission import AdmissionControl
from agentstream.middleware import LLMCallOutput, RateLimitWaitInput
from agentstream.testing import AppHarness, run_agent
from tests.llm.conftest import FAST, open_store
from tests.runtime.helpers import Ticket, make_app

EVENTS = 40


class Seen(Middleware):
    def __init__(self) -> None:
        self.waits: list[RateLimitWaitInput] = []
        self.calls: list[LLMCallOutput] = []

    async def on_rate_limit_wait(self, inp: RateLimitWaitInput) -> None:
        self.waits.append(inp)

    async def after_llm_call(self, inp: LLMCallOutput) -> None:
        self.calls.append(inp)


async def test_a_429_storm_on_sdk_calls_costs_waits_not_attempts(simulator, db_url, db_path):
    # The provider allows 8 requests per 2 s; 40 events call it through the OpenAI SDK.
    sim = simulator(rpm=8, window_s=2.0, latency_ms=10)
    client = openai_client(base_url=sim.url, api_key="sim")
    seen = Seen()
    app = agentstream.App(
        "sdk",
        broker=db_url,
        config=FAST,
        admission=AdmissionControl(learn_from_headers=False),
        middleware=[seen],
    )

    @app.agent(source="tickets", output="answers", concurrency=16, retry=Retry(attempts=2))
    async def answer(ctx: Context, payload: dict) -> dict:
        reply = await client.chat.completions.create(
            model="sim-1", messages=[{"role": "user", "content": f"ticket {payload['n']}"}]
        )
        return {"n": payload["n"], "text": reply.choices[0].message.content}

    async with AppHarness(app) as h:
        await h.produce(
            "tickets",
            [{"n": i} for i in range(EVENTS)],
            key=lambda v: f"customer-{v['n'] % 20}",
            headers=lambda v: {"id": f"ticket-{v['n']}"},
        )
        await h.wait_drained(timeout_s=120)

    rejected = [c for c in sim.calls if c.status == 429]
    assert len(rejected) >= 8, "the simulator must actually have rejected calls"
    store = await open_store(db_path)
    counts = await store.counts("answer")
    events = await store.list_events(agent="answer", limit=1000)
    await store.close()
    assert (counts["completed"], counts["dead"]) == (EVENTS, 0)
    assert {e.attempts for e in events} == {1}, "a rate-limit wait must not cost an attempt"
    assert len([w for w in seen.waits if w.reason == "retry_after"]) == len(rejected)
    assert len(sim.accepted()) == EVENTS
    ok = [c for c in seen.calls if c.response is not None]
    assert all(c.response.usage.total_tokens > 0 for c in ok)  # usage reached the middleware
    await client.close()


async def test_a_per_event_call_ceiling_stops_sdk_calls_too(simulator, db_url):
    sim = simulator(tool_call_rate=0.0)
    client = openai_client(base_url=sim.url, api_key="sim")
    app = make_app(db_url)

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, budget=Budget(max_llm_calls=2))
    async def chatty(ctx: Context, t: Ticket) -> None:
        for i in range(5):
            await client.chat.completions.create(
                model="sim-1", messages=[{"role": "user", "content": f"call {i}"}]
            )

    run = await run_agent(app, "chatty", Ticket(ticket_id="T1", customer_id="c1"))
    assert run.outcome == "dead_lettered"
    assert run.dead_letter is not None and run.dead_letter["failure_class"] == "budget_exceeded"
    assert len(sim.accepted()) == 2
    await client.close()
