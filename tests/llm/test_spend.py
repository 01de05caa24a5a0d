"""A per-agent spend budget pauses consumption while spent and resumes as it refills."""

from __future__ import annotations

import asyncio
import time

import agentstream
from agentstream import Context
from agentstream.llm.admission import AdmissionControl, SpendLimit
from agentstream.llm.openai_provider import OpenAIProvider
from agentstream.llm.pricing import ModelPrice, PriceTable
from agentstream.testing import AppHarness
from tests.llm.conftest import FAST, open_store

PRICES = PriceTable({"sim-1": ModelPrice(1000.0, 1000.0)})  # one token costs $0.001


async def test_a_spent_budget_pauses_consumption_then_resumes_without_losing_events(
    simulator, db_url, db_path
):
    sim = simulator(max_completion_tokens=20)
    budget = SpendLimit(usd=0.1, period_s=2.0)  # about three calls, refilling in 2 s
    admission = AdmissionControl(spend={"billing": budget}, prices=PRICES, pause_after_s=0.2)
    app = agentstream.App(
        "spend",
        broker=db_url,
        llm=OpenAIProvider(base_url=sim.url, api_key="sim", prices=PRICES),
        admission=admission,
        config=FAST,
    )

    @app.agent(source="invoices", output="notes")
    async def billing(ctx: Context, payload: dict) -> str:
        return (await ctx.llm(user=f"invoice {payload['n']}")).text or ""

    started = time.monotonic()
    async with AppHarness(app) as h:
        (worker,) = h.workers
        await h.produce("invoices", [{"n": i} for i in range(8)], key=lambda v: str(v["n"]))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if worker.paused and admission.should_pause("billing"):
                break
        assert worker.paused, "a spent budget must pause consumption"
        delivered = worker.delivered
        await h.produce("invoices", [{"n": i} for i in range(8, 12)], key=lambda v: str(v["n"]))
        await asyncio.sleep(0.3)
        assert worker.delivered == delivered, "nothing is fetched while the budget is spent"
        await h.wait_drained(timeout_s=120)
        assert not worker.paused and worker.delivered == 12
    elapsed = time.monotonic() - started

    store = await open_store(db_path)
    counts = await store.counts("billing")
    events = await store.list_events(agent="billing", limit=100)
    await store.close()
    assert (counts["completed"], counts["dead_letters"]) == (12, 0)
    assert {e.attempts for e in events} == {1}
    spent = admission.stats.spent_usd
    per_call = spent / 12
    # no more than the budget plus its refill over the run (and one call's estimate error)
    assert spent <= budget.usd + budget.usd / budget.period_s * elapsed + per_call
    assert worker.gate_pauses >= 1
