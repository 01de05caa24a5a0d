"""Claims and fencing under real concurrency: separate pools, racing on one server."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from agentstream.event import OutgoingRecord
from agentstream.failures import FencedError
from agentstream.journal import (
    ClaimStatus,
    Completion,
    EventMeta,
    EventState,
    StepKind,
    StepRecord,
    StepStatus,
)
from agentstream.journal.postgres import PostgresStore
from tests.conformance.conftest import FakeClock
from tests.services import postgres_dsn

META = EventMeta(
    key="k", topic="t", partition=0, offset=0, timestamp_ms=0, input_hash="h", group_id="g"
)


def step(seq: int) -> StepRecord:
    return StepRecord(seq, StepKind.LLM, "llm", "fp", StepStatus.DONE, {"q": 1}, {"a": seq})


@pytest.fixture
async def workers(pg_schema: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore, FakeClock]]:
    """Two workers (two stores, two pools) on one journal, sharing a hand-moved clock."""
    clock = FakeClock()
    a = PostgresStore(postgres_dsn(), schema=pg_schema, clock=clock, pool_size=4)
    b = PostgresStore(postgres_dsn(), schema=pg_schema, clock=clock, pool_size=4)
    await a.open()
    await b.open()
    yield a, b, clock
    await a.close()
    await b.close()


async def test_two_workers_racing_for_the_same_events_each_win_exactly_once(workers):
    a, b, clock = workers
    for n in range(30):
        # When both claim a new event at the same moment, then again once its lease ran out
        first = await asyncio.gather(
            a.claim("ag", f"e{n}", owner="a", lease_s=5, meta=META),
            b.claim("ag", f"e{n}", owner="b", lease_s=5, meta=META),
        )
        clock.advance(6)
        second = await asyncio.gather(
            a.claim("ag", f"e{n}", owner="a", lease_s=5, meta=META),
            b.claim("ag", f"e{n}", owner="b", lease_s=5, meta=META),
        )
        # Then each round has exactly one winner, and the takeover bumped the epoch once
        assert sorted(c.status for c in first) == [ClaimStatus.BUSY, ClaimStatus.CLAIMED]
        assert sorted(c.status for c in second) == [ClaimStatus.BUSY, ClaimStatus.CLAIMED]
        assert max(c.epoch for c in second) == 2
    record = await a.get_event("ag", "e0")
    assert record is not None and (record.epoch, record.attempts, record.deliveries) == (2, 2, 2)


async def test_overlapping_claim_batches_in_opposite_orders_grant_every_event_once(workers):
    # Given two workers that each claim the same 300 events in batches, in opposite orders
    a, b, _ = workers
    ids = [f"e{i:03d}" for i in range(300)]
    rng = random.Random(3)

    async def worker(store: PostgresStore, order: list[str], owner: str) -> list[str]:
        won: list[str] = []
        for i in range(0, len(order), 25):
            batch = order[i : i + 25]
            claims = await store.claim_many(
                "ag", [(e, META) for e in batch], owner=owner, lease_s=60
            )
            won += [e for e, c in zip(batch, claims, strict=True) if c.status == "claimed"]
            await asyncio.sleep(rng.random() / 200)
        return won

    # When they race (no deadlock may escape, no event may be granted twice)
    won_a, won_b = await asyncio.gather(worker(a, ids, "a"), worker(b, list(reversed(ids)), "b"))
    # Then every event was granted to exactly one of them, and the journal agrees
    assert sorted(won_a + won_b) == ids
    owners = Counter(r.owner for r in await a.list_events(agent="ag", limit=None))
    assert owners == {"a": len(won_a), "b": len(won_b)}


async def test_a_zombie_cannot_write_after_its_claim_moved_to_another_worker(workers):
    # Given worker a claimed the event and then stalled past its lease; b took it over
    a, b, clock = workers
    zombie = await a.claim("ag", "e1", owner="a", lease_s=5, meta=META)
    await a.write_step("ag", "e1", zombie.epoch, step(0))
    clock.advance(6)
    fresh = await b.claim("ag", "e1", owner="b", lease_s=5, meta=META)
    assert [s.result for s in fresh.steps] == [{"a": 0}]
    # When the zombie wakes and writes while b writes and completes, concurrently
    zombie_writes = await asyncio.gather(
        a.write_step("ag", "e1", zombie.epoch, step(1)),
        a.complete("ag", "e1", zombie.epoch, Completion(result="zombie")),
        b.write_step("ag", "e1", fresh.epoch, step(1)),
        return_exceptions=True,
    )
    await b.complete("ag", "e1", fresh.epoch, Completion(result="fresh"))
    late = await a.complete_many("ag", [("e1", zombie.epoch, Completion(result="late"))])
    # Then every write of the zombie was fenced and only b's writes are in the journal
    assert [type(r) for r in zombie_writes] == [FencedError, FencedError, type(None)]
    assert isinstance(late[0], FencedError)
    record = await a.get_event("ag", "e1")
    assert record is not None and (record.state, record.result) == (EventState.COMPLETED, "fresh")
    assert [s.epoch for s in await a.steps("ag", "e1")] == [zombie.epoch, fresh.epoch]


async def test_concurrent_completions_of_one_claim_take_effect_once(workers):
    # Given one claim, completed with outputs by two racing batches (a retried batch flush)
    a, b, _ = workers
    claim = await a.claim("ag", "e1", owner="a", lease_s=5, meta=META)
    done = Completion(outputs=[OutgoingRecord("out", None, b"v", (), "ag:e1:0")], result=1)
    results = await asyncio.gather(
        a.complete_many("ag", [("e1", claim.epoch, done)]),
        b.complete_many("ag", [("e1", claim.epoch, done)]),
    )
    # Then exactly one succeeded and the output was queued once
    assert sorted(r[0] is None for r in results) == [False, True]
    assert len(await a.outbox("ag", "e1")) == 1


async def test_a_batch_holding_a_stale_and_the_current_claim_completes_only_the_current(workers):
    a, _, clock = workers
    stale = await a.claim("ag", "e1", owner="a", lease_s=5, meta=META)
    clock.advance(6)
    current = await a.claim("ag", "e1", owner="a", lease_s=5, meta=META)

    def done(tag: bytes) -> Completion:
        return Completion(
            outputs=[OutgoingRecord("out", None, tag, (), "ag:e1:0")], result=tag.decode()
        )

    errors = await a.complete_many(
        "ag", [("e1", stale.epoch, done(b"stale")), ("e1", current.epoch, done(b"current"))]
    )
    assert isinstance(errors[0], FencedError) and errors[1] is None
    assert [r.record.value for r in await a.outbox("ag", "e1")] == [b"current"]
    record = await a.get_event("ag", "e1")
    assert record is not None and record.result == "current"
