"""Content-addressed transcripts: shared prompt parts stored once; replays byte-identical."""

from __future__ import annotations

import json
import sqlite3

from agentstream import Context, Retry
from agentstream.codec import fingerprint
from agentstream.journal import StepKind
from agentstream.journal.blobs import (
    BLOB_REF,
    compact_request,
    expand_request,
    expand_steps,
    refs_in,
)
from agentstream.llm.base import LLMRequest
from agentstream.testing import AppHarness
from tests.llm.conftest import open_store

SYSTEM = (
    "You are the support triage agent of an online shop. Read the customer's message, decide "
    "whether a refund is due, and answer politely in at most three sentences. " * 3
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Look an order up by its id and return its shipping state.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
]


def test_compaction_round_trips_and_keeps_the_fingerprint_of_the_full_request():
    request = LLMRequest(
        model="sim-1",
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "short"},
        ],
        tools=TOOLS,
    )
    data = request.model_dump(mode="json")
    compacted, blobs = compact_request(data)
    assert compacted["messages"][1] == {"role": "user", "content": "short"}  # small: inline
    # a long string is a blob of its own (a payload carrying it verbatim shares it)
    assert set(compacted["messages"][0]["content"]) == {BLOB_REF}
    assert set(compacted["tools"]) == {BLOB_REF}
    assert len(blobs) == 2
    assert expand_request(compacted, blobs) == data
    assert request.fingerprint() == fingerprint("llm", data)


async def test_identical_prompt_parts_are_stored_once_across_events_and_calls(
    simulator, make_app, db_path
):
    sim = simulator(tool_call_rate=0.0, max_completion_tokens=80)
    app = make_app(sim)

    @app.agent(source="tickets", output="answers")
    async def triage(ctx: Context, payload: dict) -> str:
        conversation = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": payload["text"]},
        ]
        first = await ctx.llm(messages=conversation, tools=TOOLS)
        conversation += [first.message(), {"role": "user", "content": "Shorter, please."}]
        second = await ctx.llm(messages=conversation, tools=TOOLS)
        return second.text or ""

    async with AppHarness(app) as h:
        await h.produce(
            "tickets",
            [{"text": f"order {i} never arrived"} for i in range(20)],
            headers=lambda v: {"id": v["text"]},
        )
        await h.wait_drained()

    conn = sqlite3.connect(db_path)
    stored = conn.execute("SELECT COUNT(*) FROM as_blobs").fetchone()[0]
    conn.close()
    store = await open_store(db_path)
    references: list[str] = []
    for event in await store.list_events(agent="triage", limit=100):
        for step in await store.steps("triage", event.event_id):
            references += sorted(refs_in(step.request))
    steps = await store.steps("triage", "order 3 never arrived")
    full = await expand_steps(store, steps)
    await store.close()
    # 40 requests each reference the system prompt and the tool list; the second call of
    # each event also references its first answer when that is long enough to be a blob
    assert len(references) >= 80
    assert stored == len(set(references)) <= 2 + 20
    assert steps[0].request["messages"][0] == steps[1].request["messages"][0]
    assert set(steps[0].request["messages"][0]["content"]) == {BLOB_REF}
    for step, call in zip(full, [c for c in sim.calls if "order 3 " in str(c.body)], strict=True):
        assert step.kind == StepKind.LLM
        assert step.request["messages"] == call.body["messages"]
        assert step.request["tools"] == TOOLS
        assert step.fingerprint == LLMRequest.model_validate(step.request).fingerprint()


async def test_a_resumed_event_replays_its_recorded_calls_byte_identically(
    simulator, make_app, db_path
):
    sim = simulator()
    app = make_app(sim)
    attempts: list[int] = []
    seen: list[str] = []

    class Flaky(Exception):
        pass

    @app.agent(
        source="tickets",
        output="answers",
        retry=Retry(attempts=3, backoff_initial=0.01, retry_on=(Flaky,)),
    )
    async def triage(ctx: Context, payload: dict) -> dict:
        conversation = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"}]
        first = await ctx.llm(messages=conversation)
        conversation += [first.message(), {"role": "user", "content": "and?"}]
        second = await ctx.llm(messages=conversation)
        attempts.append(ctx.attempt)
        seen.append(first.model_dump_json() + second.model_dump_json())
        if ctx.attempt == 1:
            raise Flaky("crash after both calls were journaled")
        return {"first": first.model_dump(mode="json"), "second": second.text}

    async with AppHarness(app) as h:
        await h.produce("tickets", [{"n": 1}], headers=lambda v: {"id": "evt-1"})
        await h.wait_drained()
        (out,) = h.read("answers")

    assert attempts == [1, 2]
    assert len(sim.calls) == 2, "the second attempt must answer from the journal"
    assert seen[0] == seen[1], "the replayed answers must be byte-identical to the live ones"
    store = await open_store(db_path)
    steps = await store.steps("triage", "evt-1")
    await store.close()
    value = json.loads(out.value)
    assert value["first"] == steps[0].result
    assert value["second"] == steps[1].result["text"]
