"""Step identity survives concurrency: steps are found by key, not by arrival order."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from agentstream import Context, ProviderUnavailable, Retry
from agentstream.journal.records import StepKind, StepRecord, StepStatus
from agentstream.steps import STEP_KEY, StepIndex
from agentstream.testing import run_agent
from tests.runtime.helpers import Ticket, make_app

NO_WAIT = Retry(attempts=3, backoff_initial=0.0, backoff_max=0.0)


def rec(seq: int, name: str, fp: str, **meta: str) -> StepRecord:
    return StepRecord(seq, StepKind.STEP, name, fp, StepStatus.DONE, result=fp, meta=dict(meta))


def test_a_history_recorded_before_keys_existed_is_found_by_name_and_occurrence():
    index = StepIndex([rec(0, "llm", "a"), rec(1, "lookup", "b"), rec(2, "llm", "c")])
    assert index.place(StepKind.STEP, "llm", "a").seq == 0
    assert index.place(StepKind.STEP, "lookup", "b").seq == 1
    assert index.place(StepKind.STEP, "llm", "c").seq == 2
    fresh = index.place(StepKind.STEP, "llm", "d")
    assert (fresh.seq, fresh.key, fresh.record) == (3, "llm#2", None)


def test_concurrent_siblings_that_arrive_in_another_order_find_their_own_records():
    index = StepIndex([rec(0, "lookup", "x"), rec(1, "lookup", "y")])
    first = index.place(StepKind.STEP, "lookup", "y")  # arrives first this time
    second = index.place(StepKind.STEP, "lookup", "x")
    assert (first.seq, first.record.fingerprint) == (1, "y")  # type: ignore[union-attr]
    assert (second.seq, second.record.fingerprint) == (0, "x")  # type: ignore[union-attr]


def test_a_changed_request_still_meets_the_recorded_step_as_a_mismatch():
    index = StepIndex([rec(0, "lookup", "x")])
    placed = index.place(StepKind.STEP, "lookup", "changed")
    assert placed.record is not None and placed.record.fingerprint == "x"


def test_explicit_keys_match_only_their_own_record():
    index = StepIndex([rec(0, "tool", "x", step_key="tool@call_2"), rec(1, "tool", "y")])
    assert index.place(StepKind.STEP, "tool", "x", key="call_2").seq == 0
    assert index.place(StepKind.STEP, "tool", "q", key="call_9").record is None


def test_a_sequential_step_stores_no_key_and_a_reordered_one_does():
    index = StepIndex([])
    a = index.place(StepKind.STEP, "s", "a")
    b = index.place(StepKind.STEP, "s", "b")
    assert index.key_to_store(b.seq, "s") == "s#1"  # written while s#0 may still come
    assert index.key_to_store(a.seq, "s") is None
    c = index.place(StepKind.STEP, "s", "c")
    assert index.key_to_store(c.seq, "s") is None
    tool = index.place(StepKind.STEP, "t", "x", key="call_1")
    assert index.key_to_store(tool.seq, "t") == "t@call_1"


async def test_parallel_steps_with_random_latencies_replay_without_non_determinism(db_url):
    # Given a handler that runs three lookups concurrently, each after a random delay (as a
    # framework's parallel tool calls do), and fails after them on its first attempt
    app = make_app(db_url)
    calls: Counter[str] = Counter()
    rng = random.Random(3)

    def lookup(event: str, n: int) -> str:
        calls[f"{event}/{n}"] += 1
        return f"{event}:{n}:{rng.random():.6f}"

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, retry=NO_WAIT)
    async def agent(ctx: Context, t: Ticket) -> list[str]:
        async def tool(n: int) -> str:
            await asyncio.sleep(rng.random() * 0.01)
            return await ctx.step("lookup", lookup, t.ticket_id, n)

        results = list(await asyncio.gather(*(tool(n) for n in range(3))))
        if ctx.attempt == 1:
            raise ProviderUnavailable("crash after the tools")
        return results

    # When 100 events each fail once and are redelivered
    outcomes: Counter[str] = Counter()
    for i in range(100):
        ticket = Ticket(ticket_id=f"T{i}", customer_id="c")
        first = await run_agent(app, "agent", ticket)
        assert first.outcome == "retry"
        second = await run_agent(app, "agent", ticket, offset=1)
        outcomes[second.outcome] += 1
        assert second.result is None or [r.split(":")[1] for r in second.result] == ["0", "1", "2"]
    # Then every one completed from its records: no dead letter, no lookup run twice
    assert outcomes == {"completed": 100}
    assert set(calls.values()) == {1}


async def test_an_explicit_key_names_a_step_whatever_its_position(db_url):
    app = make_app(db_url)
    runs: Counter[str] = Counter()

    def work(tag: str) -> str:
        runs[tag] += 1
        return tag

    @app.agent(source="tickets", identity=lambda t: t.ticket_id, retry=NO_WAIT)
    async def agent(ctx: Context, t: Ticket) -> list[str]:
        order = ["a", "b"] if ctx.attempt == 1 else ["b", "a"]
        out = [await ctx.step("tool", work, tag, key=f"call_{tag}") for tag in order]
        if ctx.attempt == 1:
            raise ProviderUnavailable("crash")
        return out

    first = await run_agent(app, "agent", Ticket(ticket_id="K1", customer_id="c"))
    second = await run_agent(app, "agent", Ticket(ticket_id="K1", customer_id="c"), offset=1)
    assert (first.outcome, second.outcome) == ("retry", "completed")
    assert second.result == ["b", "a"] and runs == {"a": 1, "b": 1}
    assert {s.meta.get(STEP_KEY) for s in second.steps} == {"tool@call_a", "tool@call_b"}
