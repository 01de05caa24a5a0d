"""Per-key order, parallelism across keys, stale versions, racing workers, backpressure."""

from __future__ import annotations

import asyncio
import collections
import random

from agentstream import App, Context
from agentstream.middleware import Middleware, PollInput
from agentstream.testing import AppHarness
from agentstream.transports.embedded import EmbeddedTransport
from tests.runtime.helpers import FAST, Outcomes, Ticket, make_app, simulated, tickets


async def test_events_of_one_key_run_in_order_while_keys_run_concurrently(db_url):
    # Given 20 keys with 15 events each and a model with random latency
    app = make_app(db_url, simulated(latency_ms=8, latency_sigma=1.0, seed=3))
    seen: dict[str, list[int]] = collections.defaultdict(list)
    running: set[str] = set()
    peak = 0
    rng = random.Random(5)

    @app.agent(
        source="tickets", key=lambda t: t.customer_id, identity=lambda t: t.ticket_id, concurrency=8
    )
    async def ordered(ctx: Context, t: Ticket) -> None:
        nonlocal peak
        assert t.customer_id not in running, "two events of one key ran at once"
        running.add(t.customer_id)
        peak = max(peak, len(running))
        await ctx.llm(user=t.text)
        await asyncio.sleep(rng.uniform(0, 0.01))
        seen[t.customer_id].append(t.seq)
        running.discard(t.customer_id)

    async with AppHarness(app) as h:
        await h.produce("tickets", tickets(300, keys=20), key=lambda t: t.customer_id)
        await h.wait_drained()
    # Then each key's events ran in produce order, and several keys ran at once
    assert all(s == list(range(1, 16)) for s in seen.values()) and len(seen) == 20
    assert 1 < peak <= 8


async def test_stale_and_already_applied_versions_are_skipped_and_counted(db_url):
    outcomes = Outcomes()
    app = make_app(db_url, middleware=[outcomes])
    applied: list[tuple[str, int]] = []

    @app.agent(
        source="accounts",
        key=lambda t: t.customer_id,
        identity=lambda t: t.ticket_id,
        version=lambda t: t.version,
    )
    async def apply(ctx: Context, t: Ticket) -> None:
        applied.append((t.customer_id, t.version or 0))

    versions = {"a": [1, 3, 2, 3, 4], "b": [5, 1, 6]}
    events = [
        Ticket(ticket_id=f"{c}-{i}", customer_id=c, version=v)
        for c, vs in versions.items()
        for i, v in enumerate(vs)
    ]
    async with AppHarness(app) as h:
        await h.produce("accounts", events, key=lambda t: t.customer_id)
        await h.wait_drained()
    assert [v for c, v in applied if c == "a"] == [1, 3, 4]
    assert [v for c, v in applied if c == "b"] == [5, 6]
    assert outcomes.counts["stale"] == 3


async def test_two_workers_racing_on_the_same_events_make_one_llm_call_and_one_effect(db_url):
    # Given two deployments of the same agent (two consumer groups) reading the same topic and
    # sharing the journal, and a slow model, so that both hold the same events at the same time
    provider = simulated(latency_ms=150, latency_sigma=0)
    effects: list[str] = []
    outcomes = Outcomes()

    def build(group: str) -> App:
        app = App("race", broker=db_url, llm=provider, config=FAST, middleware=[outcomes])

        @app.agent(source="tickets", identity=lambda t: t.ticket_id, concurrency=32, group=group)
        async def racer(ctx: Context, t: Ticket) -> str:
            answer = await ctx.llm(user=t.text)
            await ctx.effect("notify", effects.append, t.ticket_id)
            return answer.text or ""

        return app

    batch = tickets(40, keys=40)
    async with AppHarness(build("blue")) as blue, AppHarness(build("green")) as green:
        await blue.produce("tickets", batch, key=lambda t: t.customer_id)
        await blue.wait_drained()
        await green.wait_drained()
    # Then every event was delivered twice, but called the model and had its effect once
    assert outcomes.counts["completed"] == 40
    assert outcomes.counts["duplicate"] + outcomes.counts["busy"] >= 40
    assert provider.simulator.stats["requests"] == 40
    assert sorted(effects) == sorted(t.ticket_id for t in batch)


class PollWatch(Middleware):
    def __init__(self) -> None:
        self.polls = 0
        self.paused_polls = 0
        self.max_buffered = 0

    async def on_poll(self, inp: PollInput) -> None:
        self.polls += 1
        self.paused_polls += inp.paused
        self.max_buffered = max(self.max_buffered, inp.buffered)


async def test_a_full_buffer_pauses_fetching_while_the_poll_loop_keeps_running(db_url):
    watch = PollWatch()
    config = FAST.model_copy(update={"max_buffered": 20, "poll_batch": 10})
    app = App("bp", broker=db_url, llm=simulated(), config=config, middleware=[watch])
    gate = asyncio.Event()

    @app.agent(
        source="tickets", key=lambda t: t.customer_id, identity=lambda t: t.ticket_id, concurrency=4
    )
    async def slow(ctx: Context, t: Ticket) -> None:
        await gate.wait()

    async with AppHarness(app) as h:
        await h.produce("tickets", tickets(200, keys=50), key=lambda t: t.customer_id)
        await asyncio.sleep(1.0)
        # While every slot is blocked: fetching paused, buffer bounded, polling alive
        polls_before = watch.polls
        await asyncio.sleep(0.5)
        assert h.workers[0].paused
        assert watch.polls > polls_before
        assert watch.max_buffered <= 20 + 10
        gate.set()
        await h.wait_drained()
    assert watch.paused_polls > 0
    assert not h.workers[0].paused


async def test_offsets_are_committed_only_up_to_the_lowest_event_not_done(db_url, db_path):
    # Given one partition where the first event is slow and the rest are fast
    config = FAST.model_copy(update={"partitions": 1})
    app = App("wm", broker=db_url, llm=simulated(), config=config)
    release = asyncio.Event()

    @app.agent(
        source="tickets", key=lambda t: t.customer_id, identity=lambda t: t.ticket_id, concurrency=8
    )
    async def wm(ctx: Context, t: Ticket) -> None:
        if t.ticket_id == "T0000":
            await release.wait()

    inspector = EmbeddedTransport(db_path)
    await inspector.start()
    try:
        async with AppHarness(app) as h:
            await h.produce("tickets", tickets(20, keys=20), key=lambda t: t.customer_id)
            await asyncio.sleep(0.8)
            # Then 19 events are done but the committed offset stays at the slow one
            [(committed, end)] = (await inspector.group_offsets("wm.wm", ["tickets"])).values()
            assert end == 20 and committed in (None, 0)
            release.set()
            await h.wait_drained()
            [(committed, end)] = (await inspector.group_offsets("wm.wm", ["tickets"])).values()
            assert committed == end == 20
    finally:
        await inspector.close()
