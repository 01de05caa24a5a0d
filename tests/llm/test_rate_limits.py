"""429 storms, admission control and paused consumption, against the simulator over HTTP."""

from __future__ import annotations

import asyncio

from agentstream import Context, Middleware, Retry
from agentstream.llm.admission import AdmissionControl, ModelLimits
from agentstream.middleware import RateLimitWaitInput
from agentstream.testing import AppHarness
from tests.llm.conftest import open_store

EVENTS = 60


class Waits(Middleware):
    def __init__(self) -> None:
        self.seen: list[RateLimitWaitInput] = []

    async def on_rate_limit_wait(self, inp: RateLimitWaitInput) -> None:
        self.seen.append(inp)


def storm_agent(app, retry: Retry | None = None) -> None:
    @app.agent(source="tickets", output="answers", concurrency=16, retry=retry)
    async def answer(ctx: Context, payload: dict) -> dict:
        reply = await ctx.llm(user=f"ticket {payload['n']}")
        return {"n": payload["n"], "text": reply.text, "waits": ctx.rate_limit_waits}


async def produce_tickets(h: AppHarness, n: int = EVENTS, start: int = 0) -> None:
    await h.produce(
        "tickets",
        [{"n": i} for i in range(start, start + n)],
        key=lambda v: f"customer-{v['n'] % 20}",
        headers=lambda v: {"id": f"ticket-{v['n']}"},
    )


async def test_a_429_storm_is_absorbed_without_failed_attempts_or_dead_letters(
    simulator, make_app, db_path
):
    # The provider allows 10 requests per 2 s; 60 events arrive at once, 16 keys at a time,
    # and admission control knows no limits in advance (learning is off): every 429 is real.
    sim = simulator(rpm=10, window_s=2.0, latency_ms=20)
    waits = Waits()
    app = make_app(sim, admission=AdmissionControl(learn_from_headers=False), middleware=[waits])
    storm_agent(app, retry=Retry(attempts=2, backoff_initial=0.05))

    async with AppHarness(app) as h:
        await produce_tickets(h)
        await h.wait_drained(timeout_s=120)
        outputs = h.read("answers")

    rejected = [c for c in sim.calls if c.status == 429]
    assert len(rejected) >= 10, "the simulator must actually have rejected calls"
    assert app.admission is not None and app.admission.stats.rate_limited == len(rejected)
    store = await open_store(db_path)
    counts = await store.counts("answer")
    events = await store.list_events(agent="answer", limit=1000)
    failures = [await store.failures("answer", e.event_id) for e in events]
    await store.close()
    assert (counts["completed"], counts["dead"], counts["dead_letters"]) == (EVENTS, 0, 0)
    assert {e.attempts for e in events} == {1}, "a rate-limit wait must not cost an attempt"
    assert all(f == [] for f in failures)
    assert sorted(int(m.value.split(b'"n":')[1].split(b",")[0]) for m in outputs) == list(
        range(EVENTS)
    )
    assert len([c for c in sim.calls if c.status == 200]) == EVENTS
    retried = [w for w in waits.seen if w.reason == "retry_after"]
    assert len(retried) == len(rejected)  # every 429 was a wait, reported to middleware
    assert any(w.reason == "admission" for w in waits.seen)


async def test_without_admission_control_the_same_storm_burns_attempts_and_dead_letters(
    simulator, make_app, db_path
):
    # The contrast that shows what the test above guards: with admission off, a 429 is a
    # failed attempt, and events run out of attempts during the storm.
    sim = simulator(rpm=10, window_s=2.0, latency_ms=20)
    app = make_app(sim, admission=False)
    storm_agent(app, retry=Retry(attempts=2, backoff_initial=0.05, backoff_max=0.1))

    async with AppHarness(app) as h:
        await produce_tickets(h)
        await h.wait_drained(timeout_s=120)

    store = await open_store(db_path)
    counts = await store.counts("answer")
    await store.close()
    assert counts["dead_letters"] > 0
    assert counts["completed"] + counts["dead"] == EVENTS


async def test_consumption_pauses_while_calls_wait_and_resumes_when_capacity_returns(
    simulator, make_app, db_path
):
    sim = simulator(rpm=5, window_s=1.0, latency_ms=10)
    admission = AdmissionControl(
        {"sim-1": ModelLimits(rpm=5, window_s=1.0)}, pause_after_s=0.3, learn_from_headers=False
    )
    app = make_app(sim, admission=admission)
    storm_agent(app)

    async with AppHarness(app) as h:
        (worker,) = h.workers
        await produce_tickets(h, 30)
        paused_at = None
        for _ in range(200):
            await asyncio.sleep(0.05)
            if worker.paused and admission.should_pause("answer"):
                paused_at = worker.delivered
                break
        assert paused_at is not None, "the worker never paused while calls waited for permits"
        await produce_tickets(h, 10, start=30)
        await asyncio.sleep(0.5)
        assert worker.delivered == paused_at, "a paused worker must not fetch new events"
        await h.wait_drained(timeout_s=120)
        assert not worker.paused and worker.delivered == 40

    store = await open_store(db_path)
    counts = await store.counts("answer")
    await store.close()
    assert (counts["completed"], counts["dead_letters"]) == (40, 0)
    assert [c.status for c in sim.calls].count(429) == 0
