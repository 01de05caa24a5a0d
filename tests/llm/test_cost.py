"""Cost: the provider's reported figure first, then the price table over genai-prices; unpriced
models are warned about, counted, and refused under a cost ceiling unless allowed."""

from __future__ import annotations

import logging

import pytest

import agentstream
from agentstream import Budget, ConfigurationError, Context
from agentstream.journal.sqlite import SqliteStore
from agentstream.llm.base import Usage
from agentstream.llm.openai_provider import OpenAIProvider
from agentstream.llm.pricing import ModelPrice, PriceTable, reported_cost
from agentstream.observability.metrics import PrometheusMiddleware
from agentstream.testing import AppHarness
from tests.llm.conftest import FAST

ALIAS = "team-gateway-default"  # a gateway's model alias: no price source knows it


async def test_a_cost_reported_by_the_gateway_trips_the_per_event_ceiling(
    simulator, db_url, db_path
):
    # Given a gateway (the simulator) that reports $0.03 per call for an alias, and an agent
    # whose events may spend $0.05
    sim = simulator(model=ALIAS, reported_cost_usd=0.03)
    app = agentstream.App(
        "cost", broker=db_url, llm=OpenAIProvider(base_url=sim.url, api_key="sim"), config=FAST
    )

    @app.agent(
        source="tickets",
        model=ALIAS,
        identity=lambda p: p["id"],
        budget=Budget(max_cost_usd=0.05, allow_unpriced=True),
    )
    async def chatty(ctx: Context, payload: dict) -> None:
        for n in range(5):
            await ctx.llm(user=f"turn {n}")

    # When an event makes call after call
    async with AppHarness(app) as h:
        await h.produce("tickets", [{"id": "T-1"}])
        await h.wait_drained(timeout_s=30)
    # Then the third call is refused on the reported spend ($0.06 > $0.05) and the event is
    # dead-lettered as budget_exceeded after two calls
    assert sim.simulator.stats["requests"] == 2
    store = SqliteStore(db_path)
    await store.open()
    try:
        (letter,) = await store.dead_letters(limit=10)
        steps = await store.steps("chatty", "T-1")
    finally:
        await store.close()
    assert letter.failure_class == "budget_exceeded"
    assert [s.meta["cost_usd"] for s in steps] == [0.03, 0.03]
    assert {s.meta["cost_source"] for s in steps} == {"provider"}


async def test_a_cost_ceiling_on_an_unpriced_model_is_refused_at_start_up(simulator, db_url):
    sim = simulator(model=ALIAS)
    app = agentstream.App(
        "cost", broker=db_url, llm=OpenAIProvider(base_url=sim.url, api_key="sim"), config=FAST
    )

    @app.agent(source="tickets", model=ALIAS, budget=Budget(max_cost_usd=1.0))
    async def capped(ctx: Context, payload: dict) -> None:
        await ctx.llm(user="hi")

    with pytest.raises(ConfigurationError, match="allow_unpriced"):
        async with AppHarness(app):
            pass


async def test_an_unpriced_model_is_warned_about_once_and_counted(simulator, db_url, caplog):
    sim = simulator(model=ALIAS)
    metrics = PrometheusMiddleware()
    app = agentstream.App(
        "cost",
        broker=db_url,
        llm=OpenAIProvider(base_url=sim.url, api_key="sim"),
        middleware=[metrics],
        config=FAST,
    )

    @app.agent(source="tickets", model=ALIAS)
    async def plain(ctx: Context, payload: dict) -> None:
        await ctx.llm(user="hi")

    with caplog.at_level(logging.WARNING, logger="agentstream.pricing"):
        async with AppHarness(app) as h:
            await h.produce("tickets", [{"n": i} for i in range(3)], key=lambda p: str(p["n"]))
            await h.wait_drained(timeout_s=30)
    warnings = [r for r in caplog.records if "has no price" in r.getMessage()]
    assert len(warnings) == 1 and ALIAS in warnings[0].getMessage()
    assert (
        metrics.registry.get_sample_value(
            "agentstream_llm_unpriced_calls_total", {"agent": "plain", "model": ALIAS}
        )
        == 3.0
    )


def test_the_maintained_list_prices_real_models_and_the_local_table_overrides_it():
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=0)
    listed = PriceTable().cost("gpt-4o-mini", usage)
    assert 0 < listed < 5  # priced by genai-prices, not by a local entry
    assert PriceTable({"gpt-4o-mini": ModelPrice(9.0, 9.0)}).cost("gpt-4o-mini", usage) == 9.0
    assert not PriceTable().is_priced(ALIAS)
    assert PriceTable(maintained=False).quote("gpt-4o-mini", usage) is None


def test_reported_cost_reads_the_gateway_header_then_the_usage_cost_field():
    assert reported_cost({"X-LiteLLM-Response-Cost": "0.0123"}, None) == 0.0123
    assert reported_cost({}, {"usage": {"prompt_tokens": 3, "cost": 0.5}}) == 0.5
    assert reported_cost({"x-litellm-response-cost": "n/a"}, {"usage": {}}) is None
