"""Token buckets, AIMD concurrency and limit learning, driven without sleeping."""

from __future__ import annotations

import asyncio
import random

import pytest

from agentstream.event import Event, Message
from agentstream.failures import RateLimitedError
from agentstream.llm.admission import AdmissionControl, ModelLimits
from agentstream.llm.aimd import AdaptiveConcurrency
from agentstream.llm.base import LLMRequest, LLMResponse, RateLimitSnapshot, Usage
from agentstream.llm.buckets import BucketSpec, LocalBuckets, SqliteBuckets, Take
from agentstream.middleware import LLMCallInput, LLMCallOutput
from agentstream.sqlite_db import SqliteDatabase


def windows_respected(times: list[tuple[float, float]], window: float, limit: float) -> float:
    """The largest total taken in any window starting at a grant."""
    worst = 0.0
    for i, (start, _) in enumerate(times):
        worst = max(worst, sum(a for t, a in times[i:] if t < start + window))
    return worst


@pytest.mark.parametrize("burst", [0.01, 0.05, 0.3])
async def test_a_greedy_taker_never_gets_more_than_the_limit_in_any_sliding_window(burst):
    buckets, rng = LocalBuckets(), random.Random(3)
    spec = BucketSpec.per_window("llm:m:tokens", 6000, burst, 60.0)
    now, granted = 1000.0, []
    while now < 1000.0 + 400:
        amount = rng.choice([20, 80, 150, 400])
        wait = await buckets.take([Take(spec, amount)], now)
        if wait == 0:
            granted.append((now, amount))
        now += wait if wait > 0 else rng.uniform(0, 0.05)
    assert windows_respected(granted, 60.0, 6000) <= 6000 + 400  # one oversize take of debt
    total = sum(a for _, a in granted)
    assert total >= 0.9 * 6000 * 400 / 60 * (1 - burst)  # and it is not starved either


async def test_a_take_larger_than_the_burst_is_granted_once_and_repaid_as_debt():
    buckets = LocalBuckets()
    spec = BucketSpec("b", capacity=100, rate=10)
    assert await buckets.take([Take(spec, 500)], 0.0) == 0.0
    assert await buckets.take([Take(spec, 1)], 0.0) == pytest.approx(40.1)
    assert await buckets.take([Take(spec, 1)], 40.1) == 0.0


async def test_takes_are_all_or_nothing_across_buckets_and_blocks_hold_every_taker():
    buckets = LocalBuckets()
    rpm, tpm = BucketSpec("r", 10, 1), BucketSpec("t", 100, 10)
    assert await buckets.take([Take(rpm, 1), Take(tpm, 100)], 0.0) == 0.0
    assert await buckets.take([Take(rpm, 1), Take(tpm, 50)], 0.0) == pytest.approx(5.0)
    assert await buckets.take([Take(rpm, 9)], 0.0) == 0.0  # the failed take debited nothing
    await buckets.block(tpm, until=30.0, now=1.0)
    assert await buckets.take([Take(tpm, 1)], 20.0) == pytest.approx(10.0)
    await buckets.give([Take(tpm, 1000)], 31.0)
    assert await buckets.take([Take(tpm, 100)], 31.0) == 0.0


async def test_sqlite_buckets_are_one_quota_for_every_process_sharing_the_file(tmp_path):
    dbs = [SqliteDatabase(tmp_path / "journal.db") for _ in range(3)]  # like 3 processes
    for db in dbs:
        await db.start()
    stores = [SqliteBuckets(db) for db in dbs]
    await stores[0].open()
    spec = BucketSpec("llm:m:requests", capacity=50, rate=0.0001)

    async def greedy(store: SqliteBuckets) -> int:
        got = 0
        for _ in range(40):
            if await store.take([Take(spec, 1)], 1000.0) == 0.0:
                got += 1
        return got

    counts = await asyncio.gather(*(greedy(s) for s in stores))
    for db in dbs:
        await db.close()
    assert sum(counts) == 50, counts  # separate quotas would have granted 3 x 40


def test_aimd_halves_on_429_grows_on_success_and_backs_off_when_latency_climbs():
    clock = [0.0]
    c = AdaptiveConcurrency(initial=8, maximum=64, clock=lambda: clock[0])
    for _ in range(8):
        c.in_flight = int(c.limit)
        c.release(latency_s=0.1)
    assert c.limit == 16  # slow start: one per success
    c.in_flight = 1
    c.release(rate_limited=True)
    c.in_flight = 1
    c.release(rate_limited=True)  # same round trip: one signal
    assert c.limit == 8 and c.decreases == 1 and not c.slow_start
    for _ in range(30):
        clock[0] += 1
        c.in_flight = int(c.limit)
        c.release(latency_s=0.1)
    assert 8 < c.limit < 13  # congestion avoidance: about one per round trip
    before = c.limit
    for _ in range(10):
        clock[0] += 1
        c.in_flight = int(c.limit)
        c.release(latency_s=2.0)
    assert c.limit < before


async def test_aimd_waiters_are_served_in_arrival_order():
    c = AdaptiveConcurrency(initial=1, minimum=1, maximum=1)
    await c.acquire()
    order: list[int] = []

    async def waiter(n: int) -> None:
        await c.acquire()
        order.append(n)
        c.release()

    tasks = [asyncio.create_task(waiter(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    tasks[2].cancel()
    c.release()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == [0, 1, 3, 4] and c.in_flight == 0


def call(seq: int) -> tuple[LLMCallInput, Event]:
    msg = Message("t", 0, seq, None, b"{}")
    event = Event(message=msg, identity=f"e{seq}", key="k", payload={})
    request = LLMRequest(model="gpt-test", messages=[{"role": "user", "content": "x" * 400}])
    return LLMCallInput("agent", event, seq, request, 100), event


async def test_limits_are_learned_from_headers_and_a_429_blocks_the_model():
    admission = AdmissionControl(shared=LocalBuckets(), default_completion_tokens=50)
    await admission.start(None)
    inp, event = call(0)
    await admission.before_llm_call(inp)
    response = LLMResponse(
        model="gpt-test",
        usage=Usage(prompt_tokens=100, completion_tokens=20),
        rate_limits=RateLimitSnapshot(limit_requests=500, limit_tokens=30_000),
    )
    await admission.after_llm_call(
        LLMCallOutput("agent", event, 0, inp.request, response, None, 0.2)
    )
    assert admission.limits_for("gpt-test") == ModelLimits(rpm=500, tpm=30_000)
    inp, event = call(1)
    await admission.before_llm_call(inp)
    error = RateLimitedError("slow down", retry_after=30.0)
    await admission.after_llm_call(LLMCallOutput("agent", event, 1, inp.request, None, error, 0.1))
    assert admission.stats.rate_limited == 1
    assert admission.should_pause("agent")  # a 30 s cool-down is longer than pause_after_s
    assert admission.concurrency_limit("gpt-test") == 4
