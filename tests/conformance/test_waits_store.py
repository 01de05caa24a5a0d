"""The journal's waiting events and signals, the same on every store (see journal/waits.py)."""

from __future__ import annotations

import pytest

from agentstream.event import Message
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
from agentstream.journal.waits import WAIT_SIGNAL, WAIT_TIMER, SignalStatus, Wait, WaitJournal
from tests.conformance.conftest import FakeClock

MESSAGE = Message(topic="refunds", partition=1, offset=7, key=b"carol", value=b'{"id": "e1"}')
META = EventMeta(
    key="carol",
    topic="refunds",
    partition=1,
    offset=7,
    timestamp_ms=1000,
    input_hash="ab" * 32,
    group_id="g",
    message=MESSAGE,
)


def wait_step(status: StepStatus, result: object = None) -> StepRecord:
    return StepRecord(
        seq=0,
        kind=StepKind.WAIT,
        name="approval",
        fingerprint="fp",
        status=status,
        request={"signal": "approval"},
        result=result,
        started_at=1.0,
    )


def accept(_data: object) -> str | None:
    return None


async def suspended(store: WaitJournal, clock: FakeClock, *, deadline: float | None, key=True):
    claim = await store.claim("a", "e1", owner="w", lease_s=10, meta=META)  # type: ignore[attr-defined]
    wait = Wait(WAIT_SIGNAL, "approval", 0, deadline, clock.now, holds_key=key)
    await store.suspend("a", "e1", claim.epoch, wait, wait_step(StepStatus.STARTED), "carol")
    return claim


async def test_a_suspended_event_is_waiting_and_answers_claims_with_waiting(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    claim = await suspended(store, clock, deadline=clock.now + 100)
    # the claim is released: the old epoch can no longer write
    with pytest.raises(FencedError):
        await store.write_step("a", "e1", claim.epoch, wait_step(StepStatus.DONE))
    assert (await store.get_event("a", "e1")).state == EventState.WAITING
    again = await store.claim("a", "e1", owner="w2", lease_s=10, meta=META)
    assert again.status == ClaimStatus.WAITING
    assert await store.due_waits("a", limit=10) == []
    [row] = await store.waiting("a")
    assert (row.event_id, row.wait.name, row.wait.deadline) == ("e1", "approval", clock.now + 100)
    assert row.message is not None and row.message.value == MESSAGE.value
    assert (await store.counts("a"))["waiting"] == 1
    # the waiting event holds its key: later events of it park behind it
    assert await store.blocked_by("a", "carol") == "e1"
    assert await store.park("a", "e2", "carol", MESSAGE)
    assert await store.parked("a", releasable=True) == []


async def test_a_waiting_tombstone_keeps_its_null_value(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    tombstone = Message("refunds", 1, 8, b"carol", None, timestamp_ms=1000)
    meta = EventMeta("carol", "refunds", 1, 8, 1000, "tombstone", "g", message=tombstone)
    claim = await store.claim("a", "e1", owner="w", lease_s=10, meta=meta)
    wait = Wait(WAIT_SIGNAL, "approval", 0, None, clock.now, holds_key=True)
    await store.suspend("a", "e1", claim.epoch, wait, wait_step(StepStatus.STARTED), "carol")
    [row] = await store.waiting("a")
    assert row.message == tombstone


async def test_a_signal_makes_its_waiting_event_due_once(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    await suspended(store, clock, deadline=None)
    first = await store.signal("a", "e1", "approval", {"ok": True}, signal_id="s1")
    second = await store.signal("a", "e1", "approval", {"ok": True}, signal_id="s1")
    assert (first.status, second.status) == (SignalStatus.DELIVERED, SignalStatus.DUPLICATE)
    [due] = await store.due_waits("a", limit=10)
    assert due.event_id == "e1"
    claim = await store.claim("a", "e1", owner="w2", lease_s=10, meta=META)
    assert claim.status == ClaimStatus.CLAIMED and claim.attempts == 1
    assert [s.status for s in claim.steps] == [StepStatus.STARTED]
    # a woken claim is not offered again while its lease lives, but is once it lapses
    assert await store.due_waits("a", limit=10) == []
    taken = await store.take_signal(
        "a", "e1", claim.epoch, "approval", wait_step(StepStatus.DONE), accept
    )
    assert taken is not None and taken.data == {"ok": True}
    assert (
        await store.take_signal(
            "a", "e1", claim.epoch, "approval", wait_step(StepStatus.DONE), accept
        )
        is None
    )
    [step] = await store.steps("a", "e1")
    assert step.status == StepStatus.DONE and step.result["data"] == {"ok": True}
    clock.advance(11)
    assert [d.event_id for d in await store.due_waits("a", limit=10)] == ["e1"]


async def test_a_signal_before_the_wait_is_kept_and_makes_the_suspension_due(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    early = await store.signal("a", "e1", "approval", 1, signal_id="s1")
    assert early.status == SignalStatus.UNKNOWN_EVENT
    await suspended(store, clock, deadline=None)
    assert [d.event_id for d in await store.due_waits("a", limit=10)] == ["e1"]


async def test_an_invalid_signal_is_rejected_and_the_next_one_taken(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    claim = await store.claim("a", "e1", owner="w", lease_s=10, meta=META)
    await store.signal("a", "e1", "approval", "nonsense", signal_id="s1")
    await store.signal("a", "e1", "approval", {"ok": True}, signal_id="s2")
    taken = await store.take_signal(
        "a",
        "e1",
        claim.epoch,
        "approval",
        wait_step(StepStatus.DONE),
        lambda data: None if isinstance(data, dict) else "not an object",
    )
    assert taken is not None and taken.signal_id == "s2"
    assert [s.status for s in await store.signals("a", "e1")] == ["rejected", "consumed"]


async def test_a_timer_is_due_at_its_deadline_and_a_finished_event_rejects_signals(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    claim = await store.claim("a", "e1", owner="w", lease_s=10, meta=META)
    wait = Wait(WAIT_TIMER, "sleep", 0, clock.now + 5, clock.now)
    await store.suspend("a", "e1", claim.epoch, wait, wait_step(StepStatus.STARTED), "carol")
    assert await store.due_waits("a", limit=10) == []
    assert await store.blocked_by("a", "carol") is None  # does not hold its key
    clock.advance(5)
    assert [d.event_id for d in await store.due_waits("a", limit=10)] == ["e1"]
    claim = await store.claim("a", "e1", owner="w", lease_s=10, meta=META)
    await store.complete("a", "e1", claim.epoch, Completion())
    assert await store.due_waits("a", limit=10) == []
    late = await store.signal("a", "e1", "approval", 1, signal_id="s9")
    assert late.status == SignalStatus.REJECTED and late.event_state == "completed"
    assert [s.status for s in await store.signals("a", "e1")] == ["rejected"]
