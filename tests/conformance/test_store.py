"""One Store conformance suite, run against every journal backend."""

from __future__ import annotations

import asyncio

import pytest

from agentstream.event import OutgoingRecord
from agentstream.failures import FencedError
from agentstream.journal.base import (
    ClaimStatus,
    Completion,
    EventMeta,
    EventState,
    FailureRecord,
    StepKind,
    StepRecord,
    StepStatus,
)
from tests.conformance.conftest import FakeClock

META = EventMeta(
    key="customer-1",
    topic="tickets",
    partition=3,
    offset=42,
    timestamp_ms=1000,
    input_hash="ab" * 32,
    group_id="g",
)


def step(seq: int, status: StepStatus = StepStatus.DONE, result: object = None) -> StepRecord:
    return StepRecord(
        seq=seq,
        kind=StepKind.STEP,
        name=f"s{seq}",
        fingerprint=f"fp{seq}",
        status=status,
        request={"n": seq},
        result=result,
        started_at=1.0,
        finished_at=2.0,
    )


async def test_a_first_claim_grants_epoch_one_and_counts_one_attempt(make_store):
    store = await make_store(FakeClock())
    claim = await store.claim("a", "e1", owner="w1", lease_s=10, meta=META)
    assert (claim.status, claim.epoch, claim.attempts, claim.steps) == (
        ClaimStatus.CLAIMED,
        1,
        1,
        (),
    )
    record = await store.get_event("a", "e1")
    assert record is not None
    assert (record.state, record.key, record.offset, record.owner) == (
        EventState.CLAIMED,
        "customer-1",
        42,
        "w1",
    )


async def test_a_live_claim_makes_other_claims_busy_until_the_lease_ends(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    first = await store.claim("a", "e1", owner="w1", lease_s=10, meta=META)
    busy = await store.claim("a", "e1", owner="w2", lease_s=10, meta=META)
    assert busy.status == ClaimStatus.BUSY
    assert busy.lease_until == pytest.approx(first.lease_until)
    clock.advance(11)
    taken = await store.claim("a", "e1", owner="w2", lease_s=10, meta=META)
    assert (taken.status, taken.epoch, taken.attempts) == (ClaimStatus.CLAIMED, 2, 2)


async def test_concurrent_claims_grant_exactly_one(make_store):
    clock = FakeClock()
    stores = [await make_store(clock) for _ in range(3)]
    claims = await asyncio.gather(
        *(
            s.claim("a", "race", owner=f"w{i}", lease_s=10, meta=META)
            for i, s in enumerate(stores)
            for _ in range(5)
        )
    )
    assert sum(c.status == ClaimStatus.CLAIMED for c in claims) == 1
    assert all(c.status in (ClaimStatus.CLAIMED, ClaimStatus.BUSY) for c in claims)


async def test_writes_from_a_stale_epoch_are_rejected(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    zombie = await store.claim("a", "e1", owner="zombie", lease_s=5, meta=META)
    clock.advance(6)
    fresh = await store.claim("a", "e1", owner="fresh", lease_s=5, meta=META)
    assert fresh.epoch == zombie.epoch + 1
    with pytest.raises(FencedError):
        await store.write_step("a", "e1", zombie.epoch, step(0))
    with pytest.raises(FencedError):
        await store.complete("a", "e1", zombie.epoch, Completion(result="late"))
    with pytest.raises(FencedError):
        await store.record_failure("a", "e1", zombie.epoch, FailureRecord(1, "transient", "X", "m"))
    with pytest.raises(FencedError):
        await store.dead_letter("a", "e1", zombie.epoch, failure_class="x", envelope={})
    await store.complete("a", "e1", fresh.epoch, Completion(result="ok"))
    record = await store.get_event("a", "e1")
    assert record is not None and record.state == EventState.COMPLETED and record.result == "ok"


async def test_a_completed_event_is_reported_completed_to_every_later_claim(make_store):
    store = await make_store(FakeClock())
    claim = await store.claim("a", "e1", owner="w1", lease_s=10, meta=META)
    await store.complete("a", "e1", claim.epoch, Completion(result={"d": 1}))
    again = await store.claim("a", "e1", owner="w2", lease_s=10, meta=META)
    assert again.status == ClaimStatus.COMPLETED
    record = await store.get_event("a", "e1")
    assert record is not None and record.deliveries == 2 and record.result == {"d": 1}
    with pytest.raises(FencedError):
        await store.write_step("a", "e1", claim.epoch, step(0))


async def test_steps_are_recorded_replaced_and_handed_to_the_next_claim(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    claim = await store.claim("a", "e1", owner="w1", lease_s=5, meta=META)
    await store.write_step("a", "e1", claim.epoch, step(1, StepStatus.STARTED))
    await store.write_step("a", "e1", claim.epoch, step(0, result={"x": [1, 2]}))
    await store.write_step("a", "e1", claim.epoch, step(1, StepStatus.DONE, result="r1"))
    await store.release("a", "e1", claim.epoch)
    again = await store.claim("a", "e1", owner="w2", lease_s=5, meta=META)
    assert again.status == ClaimStatus.CLAIMED
    assert [(s.seq, s.status, s.result) for s in again.steps] == [
        (0, StepStatus.DONE, {"x": [1, 2]}),
        (1, StepStatus.DONE, "r1"),
    ]
    assert again.steps[0].request == {"n": 0}
    assert [s.seq for s in await store.steps("a", "e1")] == [0, 1]


async def test_release_with_not_before_defers_the_next_claim(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    claim = await store.claim("a", "e1", owner="w1", lease_s=5, meta=META)
    await store.release("a", "e1", claim.epoch, not_before=clock.now + 3)
    assert (
        await store.claim("a", "e1", owner="w1", lease_s=5, meta=META)
    ).status == ClaimStatus.BUSY
    clock.advance(3.5)
    retry = await store.claim("a", "e1", owner="w1", lease_s=5, meta=META)
    assert (retry.status, retry.attempts) == (ClaimStatus.CLAIMED, 2)


async def test_renew_extends_live_claims_and_reports_lost_ones(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    kept = await store.claim("a", "kept", owner="w1", lease_s=5, meta=META)
    lost = await store.claim("a", "lost", owner="w1", lease_s=5, meta=META)
    clock.advance(6)
    await store.claim("a", "lost", owner="w2", lease_s=5, meta=META)
    assert await store.renew("a", [("kept", kept.epoch), ("lost", lost.epoch)], 5) == {"lost"}
    clock.advance(4)
    assert (
        await store.claim("a", "kept", owner="w3", lease_s=5, meta=META)
    ).status == ClaimStatus.BUSY


async def test_completion_enqueues_outputs_atomically_and_the_outbox_leases_them(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    other = await make_store(clock)
    claim = await store.claim("a", "e1", owner="w1", lease_s=5, meta=META)
    outputs = [
        OutgoingRecord("out", b"k", b"v0", (("h", b"1"),), "a:e1:0"),
        OutgoingRecord("out", None, b"v1", (), "a:e1:1"),
    ]
    await store.complete("a", "e1", claim.epoch, Completion(outputs=outputs, result=1))
    assert (await store.counts("a"))["outbox_pending"] == 2
    leased = await store.claim_outbox("relay-1", limit=10, lease_s=30)
    assert [r.record for r in leased] == outputs
    assert await other.claim_outbox("relay-2", limit=10, lease_s=30) == []
    clock.advance(31)
    again = await other.claim_outbox("relay-2", limit=10, lease_s=30)
    assert [r.id for r in again] == [r.id for r in leased]
    await other.mark_published([r.id for r in again])
    clock.advance(31)
    assert await store.claim_outbox("relay-1", limit=10, lease_s=30) == []
    assert [r.published_at is not None for r in await store.outbox("a", "e1")] == [True, True]
    assert (await store.counts("a"))["outbox_pending"] == 0


async def test_dead_letter_marks_the_event_dead_and_keeps_its_envelope(make_store):
    store = await make_store(FakeClock())
    claim = await store.claim("a", "e1", owner="w1", lease_s=5, meta=META)
    await store.record_failure(
        "a", "e1", claim.epoch, FailureRecord(1, "semantic", "E", "bad", "tb", 5.0)
    )
    dlq = OutgoingRecord("dlq", b"k", b"orig", (), "dlq:a:e1:1")
    envelope = {"failure_class": "semantic", "nested": {"attempts": [1, 2]}}
    dlq_id = await store.dead_letter(
        "a", "e1", claim.epoch, failure_class="semantic", envelope=envelope, outputs=[dlq]
    )
    assert (
        await store.claim("a", "e1", owner="w2", lease_s=5, meta=META)
    ).status == ClaimStatus.DEAD
    [letter] = await store.dead_letters(agent="a")
    assert (letter.id, letter.event_id, letter.failure_class, letter.key, letter.envelope) == (
        dlq_id,
        "e1",
        "semantic",
        "customer-1",
        envelope,
    )
    assert [f.message for f in await store.failures("a", "e1")] == ["bad"]
    assert [r.record for r in await store.outbox("a", "e1")] == [dlq]
    counts = await store.counts("a")
    assert (counts["dead"], counts["dead_letters"]) == (1, 1)


async def test_entity_versions_only_move_forward(make_store):
    store = await make_store(FakeClock())
    assert await store.applied_version("a", "cust") is None
    for event_id, version in (("v5", 5), ("v3", 3)):
        claim = await store.claim("a", event_id, owner="w", lease_s=5, meta=META)
        await store.complete("a", event_id, claim.epoch, Completion(entity="cust", version=version))
    assert await store.applied_version("a", "cust") == 5
    assert await store.applied_version("b", "cust") is None


async def test_events_are_listed_and_counted_per_agent(make_store):
    store = await make_store(FakeClock())
    for agent, event_id in (("a", "1"), ("a", "2"), ("b", "1")):
        claim = await store.claim(agent, event_id, owner="w", lease_s=5, meta=META)
        if event_id == "1":
            await store.complete(agent, event_id, claim.epoch, Completion())
    assert {e.event_id for e in await store.list_events(agent="a")} == {"1", "2"}
    assert [e.agent for e in await store.list_events(state=EventState.CLAIMED)] == ["a"]
    counts = await store.counts("a")
    assert (counts["completed"], counts["claimed"]) == (1, 1)
    assert (await store.counts())["completed"] == 2


async def test_blobs_are_stored_once_by_digest_and_read_back_exactly(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    other = await make_store(clock)  # another process on the same journal
    prompt = '{"content":"Ünïcode, \\"quotes\\" and newlines\\n stay exact.","role":"system"}'
    await store.put_blobs({"sha256:aa": prompt, "sha256:bb": "[1,2,3]"})
    await other.put_blobs({"sha256:aa": "a later write of a known digest changes nothing"})
    await store.put_blobs({})
    assert await other.get_blobs(["sha256:aa", "sha256:bb", "sha256:missing"]) == {
        "sha256:aa": prompt,
        "sha256:bb": "[1,2,3]",
    }
    assert await store.get_blobs([]) == {}
    many = {f"sha256:{i:04d}": f"blob {i}" for i in range(1200)}
    await store.put_blobs(many)
    assert await other.get_blobs(list(many)) == many
