"""Validated outputs and ceilings, over HTTP: re-asks, semantic dead letters, runaway loops."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agentstream import Budget, Context
from agentstream.llm.client import REASK_TEMPLATE
from agentstream.testing import AppHarness
from tests.llm.conftest import open_store


class Verdict(BaseModel):
    category: str
    urgent: bool
    score: int


async def run_one(app, payload: dict) -> None:
    async with AppHarness(app) as h:
        await h.produce("tickets", [payload], headers=lambda v: {"id": "evt-1"})
        await h.wait_drained()


def parse_agent(app) -> None:
    @app.agent(source="tickets", output="verdicts", dead_letter="tickets.dlq")
    async def triage(ctx: Context, payload: dict) -> Verdict:
        return await ctx.llm.parse(Verdict, system="Classify the ticket.", user=payload["text"])


@pytest.mark.parametrize(
    ("fault", "error_part"),
    [("invalid_json_rate", "Invalid JSON"), ("schema_invalid_rate", "category: Field required")],
)
async def test_bad_structured_outputs_are_re_asked_then_dead_lettered_with_every_attempt(
    simulator, make_app, db_path, fault, error_part
):
    sim = simulator(**{fault: 1.0})
    app = make_app(sim)
    parse_agent(app)
    await run_one(app, {"text": "charged twice"})

    assert len(sim.calls) == 3  # the first ask and two re-asks (retries=2)
    texts = [c.body["messages"][-1]["content"] for c in sim.calls[1:]]
    assert all(t.startswith(REASK_TEMPLATE.split("{")[0]) and error_part in t for t in texts)
    answers = [c.body["messages"][-2]["content"] for c in sim.calls[1:]]
    store = await open_store(db_path)
    (letter,) = await store.dead_letters(agent="triage")
    event = await store.get_event("triage", "evt-1")
    await store.close()
    env = letter.envelope
    assert (letter.failure_class, env["exception"]["type"]) == (
        "semantic",
        "agentstream.failures.InvalidOutputError",
    )
    assert event is not None and event.attempts == 1, "semantic failures are not retried"
    outputs = [a["output"] for a in env["llm_attempts"]]
    assert len(outputs) == 3 and env["semantic_attempts"] == outputs
    assert outputs[:2] == answers  # each re-ask carried the previous raw answer back
    assert env["detail"]["transcript"]["messages"][0] == {
        "role": "system",
        "content": "Classify the ticket.",
    }


@pytest.mark.parametrize(
    ("config", "error_type"),
    [
        ({"refusal_rate": 1.0}, "agentstream.failures.RefusalError"),
        ({"context_window": 5}, "agentstream.failures.ContextOverflowError"),
    ],
)
async def test_refusals_and_context_overflow_are_dead_lettered_without_blind_retries(
    simulator, make_app, db_path, config, error_type
):
    sim = simulator(**config)
    app = make_app(sim)
    parse_agent(app)
    await run_one(app, {"text": "a ticket long enough to overflow a tiny context window"})

    assert len(sim.calls) == 1
    store = await open_store(db_path)
    (letter,) = await store.dead_letters(agent="triage")
    event = await store.get_event("triage", "evt-1")
    await store.close()
    assert letter.failure_class == "semantic"
    assert letter.envelope["exception"]["type"] == error_type
    assert event is not None and event.attempts == 1


@pytest.mark.parametrize(
    ("budget", "calls"),
    [
        (Budget(max_llm_calls=5), 5),
        (Budget(max_llm_calls=None, max_tokens=900), None),
        (Budget(max_llm_calls=None, max_cost_usd=0.002), None),
    ],
    ids=["calls", "tokens", "cost"],
)
async def test_a_loop_that_keeps_calling_the_model_is_stopped_by_the_per_event_ceiling(
    simulator, make_app, db_path, budget, calls
):
    sim = simulator(max_completion_tokens=40)
    app = make_app(sim)

    @app.agent(source="tickets", budget=budget, dead_letter="tickets.dlq")
    async def runaway(ctx: Context, payload: dict) -> str:
        conversation = [{"role": "system", "content": "Keep thinking until you are sure."}]
        conversation.append({"role": "user", "content": payload["text"]})
        while True:  # never satisfied: only the ceiling ends this
            reply = await ctx.llm(messages=conversation)
            conversation += [reply.message(), {"role": "user", "content": "Are you sure?"}]

    async with AppHarness(app) as h:
        await h.produce("tickets", [{"text": "refund?"}], headers=lambda v: {"id": "evt-1"})
        await h.wait_drained()
        (dlq,) = h.read("tickets.dlq")

    store = await open_store(db_path)
    (letter,) = await store.dead_letters(agent="runaway")
    await store.close()
    env = letter.envelope
    assert letter.failure_class == "budget_exceeded"
    assert dict(dlq.headers)["agentstream-dlq-failure-class"] == b"budget_exceeded"
    made = len(sim.calls)
    assert made >= 2 and len(env["llm_attempts"]) == made
    if calls is not None:
        assert made == calls
    if budget.max_tokens is not None:  # no call starts that would cross it by its prompt
        last = env["llm_attempts"][-1]["usage"]
        assert env["tokens"] - last["completion_tokens"] <= budget.max_tokens < env["tokens"] + 300
    if budget.max_cost_usd is not None:
        assert env["cost_usd"] >= budget.max_cost_usd
        assert env["cost_usd"] - env["llm_attempts"][-1]["cost_usd"] < budget.max_cost_usd
    transcript = env["detail"]["transcript"]["messages"]
    assert transcript[:2] == [
        {"role": "system", "content": "Keep thinking until you are sure."},
        {"role": "user", "content": "refund?"},
    ]
    assert len(transcript) == 2 + 2 * (made - 1)  # the conversation the last call saw
    assert [m["content"] for m in transcript if m["role"] == "assistant"] == [
        a["output"] for a in env["llm_attempts"][:-1]
    ]
