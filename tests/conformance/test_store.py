"""One Store conformance suite, run against every journal backend."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json

import pytest

from agentstream.event import Message, OutgoingRecord
from agentstream.failures import FencedError
from agentstream.journal import (
    ClaimStatus,
    Completion,
    EventMeta,
    EventState,
    FailureRecord,
    RedriveMode,
    ShadowResult,
    ShadowRun,
    StepKind,
    StepRecord,
    StepStatus,
    Store,
)
from agentstream.journal.blobs import compact_request, refs_in
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


async def test_the_outbox_backlog_counts_unpublished_rows_and_dates_the_oldest(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    assert await store.outbox_backlog() == (0, None)
    claim = await store.claim("a", "e1", owner="w1", lease_s=5, meta=META)
    written_at = clock()
    outputs = [OutgoingRecord("out", b"k", f"v{i}".encode(), (), f"a:e1:{i}") for i in range(2)]
    await store.complete("a", "e1", claim.epoch, Completion(outputs=outputs, result=1))
    clock.advance(5)
    assert await store.outbox_backlog() == (2, written_at)
    rows = await store.claim_outbox("relay-1", limit=10, lease_s=30)
    await store.mark_published([r.id for r in rows])
    assert await store.outbox_backlog() == (0, None)


async def test_deferred_outbox_rows_are_claimed_by_no_relay_until_their_delay_ends(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    claim = await store.claim("a", "e1", owner="w1", lease_s=5, meta=META)
    outputs = [OutgoingRecord("out", f"k{i}".encode(), b"v", (), f"a:e1:{i}") for i in range(3)]
    await store.complete("a", "e1", claim.epoch, Completion(outputs=outputs, result=1))
    first, second, third = await store.claim_outbox("relay-1", limit=10, lease_s=30)
    # A refused row is deferred: not even its own relay gets it back before the delay ends,
    await store.defer_outbox("relay-1", [first.id], 10)
    assert [r.id for r in await store.claim_outbox("relay-1", limit=10, lease_s=30)] == [
        second.id,
        third.id,
    ]
    clock.advance(9)
    assert [r.id for r in await store.claim_outbox("relay-2", limit=10, lease_s=1)] == []
    # then any relay may claim it; only the holder of a lease can defer a row, and a
    # published row is never deferred back to pending.
    clock.advance(2)
    assert [r.id for r in await store.claim_outbox("relay-2", limit=10, lease_s=1)] == [first.id]
    await store.defer_outbox("relay-1", [first.id], 100)
    clock.advance(2)
    assert [r.id for r in await store.claim_outbox("relay-3", limit=10, lease_s=1)] == [first.id]
    await store.mark_published([second.id])
    await store.defer_outbox("relay-1", [second.id], 10)
    assert [r.published_at is not None for r in await store.outbox("a", "e1")] == [
        False,
        True,
        False,
    ]


async def test_outbox_rows_of_one_key_are_never_claimed_past_an_earlier_one(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    other = await make_store(clock)
    claim = await store.claim("a", "e1", owner="w1", lease_s=5, meta=META)
    early = [
        OutgoingRecord("out", b"k", b"1", (), "a:e1:0"),
        OutgoingRecord("out", None, b"x", (), "a:e1:1"),
    ]
    await store.complete("a", "e1", claim.epoch, Completion(outputs=early, result=1))
    k1, keyless = await store.claim_outbox("relay-1", limit=1 + 1, lease_s=30)
    claim = await store.claim("a", "e2", owner="w1", lease_s=5, meta=META)
    later = [
        OutgoingRecord("out", b"k", b"2", (), "a:e2:0"),
        OutgoingRecord("out", b"j", b"3", (), "a:e2:1"),
        OutgoingRecord("other", b"k", b"4", (), "a:e2:2"),
    ]
    await store.complete("a", "e2", claim.epoch, Completion(outputs=later, result=1))
    # While relay-1 holds k's first record, another relay gets every row but k's second
    got = await other.claim_outbox("relay-2", limit=10, lease_s=30)
    assert [r.record.value for r in got] == [b"3", b"4"]
    # and the holder itself may take it (it publishes its rows in order),
    assert [r.record.value for r in await store.claim_outbox("relay-1", limit=10, lease_s=30)] == [
        b"1",
        b"x",
        b"2",
    ]
    # a deferred first record holds it back from everyone, its own relay included,
    await store.defer_outbox("relay-1", [k1.id], 60)
    assert [r.record.value for r in await store.claim_outbox("relay-1", limit=10, lease_s=30)] == [
        b"x"
    ]
    clock.advance(31)
    assert b"2" not in [r.record.value for r in await other.claim_outbox("r3", limit=10, lease_s=1)]
    # and once it is published, the next in its key is free.
    await store.mark_published([k1.id, keyless.id])
    clock.advance(31)
    assert b"2" in [r.record.value for r in await other.claim_outbox("r4", limit=10, lease_s=1)]


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


def message(offset: int, value: bytes = b'{"n": 1}') -> Message:
    return Message(
        topic="tickets",
        partition=3,
        offset=offset,
        key=b"customer-1",
        value=value,
        headers=(("id", f"e{offset}".encode()), ("bin", b"\x00\xff")),
        timestamp_ms=1000 + offset,
    )


async def kill(store: Store, event_id: str, *, key: str = "customer-1") -> int:
    meta = dataclasses.replace(META, key=key) if key != META.key else META
    claim = await store.claim("a", event_id, owner="w", lease_s=5, meta=meta)
    await store.write_step("a", event_id, claim.epoch, step(0, result="recorded"))
    return await store.dead_letter(
        "a", event_id, claim.epoch, failure_class="agent_error", envelope={"n": event_id}
    )


async def test_the_first_claim_journals_the_source_message_byte_for_byte(make_store):
    store = await make_store(FakeClock())
    msg = dataclasses.replace(message(42, b"\x00raw\xffbytes"), timestamp_ms=META.timestamp_ms)
    meta = dataclasses.replace(META, message=msg)
    await store.claim("a", "e1", owner="w", lease_s=5, meta=meta)
    record = await store.get_event("a", "e1")
    assert record is not None and record.message == msg
    assert record.identity_source == "header"


async def test_long_payload_strings_are_stored_once_shared_with_prompts_and_read_back_exactly(
    make_store,
):
    clock = FakeClock()
    store = await make_store(clock)
    text = "Ünïcode stays exact; " + "the customer's order never arrived. " * 40
    values = {
        "json": json.dumps({"id": "e1", "text": text, "notes": [text, "short"]}).encode(),
        "ascii-escaped": json.dumps({"text": text}, ensure_ascii=True).encode(),
        "other-escapes": b'{"text": "' + text.encode() + b'\\u0041"}',
        "not-json": (text * 2).encode(),
        "binary": b"\x00\xff" * 400,
    }
    for n, (event_id, value) in enumerate(values.items()):
        msg = dataclasses.replace(message(n, value), timestamp_ms=META.timestamp_ms)
        meta = dataclasses.replace(META, offset=n, message=msg)
        await store.claim("a", event_id, owner="w", lease_s=5, meta=meta)
    # a prompt that sends the text verbatim references the payload's blob: one copy
    compacted, blobs = compact_request({"messages": [{"role": "user", "content": text}]})
    await store.put_blobs(blobs)
    assert len(blobs) == 1 and set(blobs) <= refs_in(compacted)
    for event_id, value in values.items():
        record = await store.get_event("a", event_id)
        assert record is not None and record.message is not None
        assert record.message.value == value, event_id
    listed = {e.event_id: e.message for e in await store.list_events(agent="a", limit=None)}
    assert {k: m.value for k, m in listed.items() if m is not None} == values
    # the dead letter's copy of the value and of the prompt reference the same blobs
    claim = await store.claim("a", "json", owner="w", lease_s=5, meta=META)
    original = {"key_b64": None, "value_b64": base64.b64encode(values["json"]).decode()}
    transcript = {"seq": 0, "messages": [{"role": "user", "content": text}], "tools": None}
    envelope = {"original": original, "detail": {"transcript": transcript}, "n": 1}
    await store.dead_letter(
        "a", "json", claim.epoch, failure_class="agent_error", envelope=envelope
    )
    (letter,) = await store.dead_letters(agent="a")
    assert letter.envelope == envelope
    assert (await store.get_dead_letter(letter.id)).envelope == envelope
    # prune keeps the blobs that rows still reference
    clock.advance(10_000)
    await store.prune(before=clock.now)
    assert (await store.get_event("a", "ascii-escaped")).message.value == values["ascii-escaped"]
    assert (await store.dead_letters(agent="a"))[0].envelope == envelope


async def test_a_null_payload_stays_null_and_an_empty_one_empty_in_every_table(make_store):
    store = await make_store(FakeClock())
    tombstone, empty = message(1, None), message(2, b"")  # type: ignore[arg-type]
    # the journaled source message
    for event_id, msg in (("gone", tombstone), ("blank", empty)):
        meta = dataclasses.replace(META, offset=msg.offset, message=msg)
        claim = await store.claim("a", event_id, owner="w", lease_s=5, meta=meta)
        record = await store.get_event("a", event_id)
        assert record is not None and record.message is not None
        assert record.message.value == msg.value
        # the dead-letter record queued in the outbox
        dlq = OutgoingRecord("dlq", b"customer-1", msg.value, (), f"dlq:a:{event_id}:1")
        await store.dead_letter(
            "a", event_id, claim.epoch, failure_class="poison", envelope={}, outputs=[dlq]
        )
        # the re-published message of a redrive
        again = OutgoingRecord("tickets", b"customer-1", msg.value, (), f"redrive:{event_id}")
        assert await store.redrive("a", event_id, mode=RedriveMode.RESUME, republish=[again])
        assert [r.record.value for r in await store.outbox("a", event_id)] == [msg.value] * 2
    assert [r.record.value for r in await store.claim_outbox("relay", limit=10, lease_s=5)] == [
        None,
        None,
        b"",
        b"",
    ]
    # a parked event behind a dead one
    await kill(store, "e0")
    assert await store.park("a", "p1", "customer-1", message(3, None))  # type: ignore[arg-type]
    assert await store.park("a", "p2", "customer-1", message(4, b""))
    parked = await store.parked("a", key="customer-1")
    assert [p.message.value for p in parked] == [None, b""]


async def test_events_are_filtered_by_key_time_offsets_and_ids_oldest_first(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    for n in range(5):
        meta = dataclasses.replace(META, offset=n, key=f"k{n % 2}")
        await store.claim("a", f"e{n}", owner="w", lease_s=5, meta=meta)
        clock.advance(10)
    start = clock.now - 50
    ids = lambda events: [e.event_id for e in events]  # noqa: E731
    assert ids(await store.list_events(agent="a", oldest_first=True, limit=None)) == [
        "e0",
        "e1",
        "e2",
        "e3",
        "e4",
    ]
    assert ids(await store.list_events(agent="a", key="k1", oldest_first=True)) == ["e1", "e3"]
    assert ids(
        await store.list_events(agent="a", since=start + 10, until=start + 30, oldest_first=True)
    ) == ["e1", "e2"]
    assert ids(
        await store.list_events(agent="a", offset_from=3, offset_to=4, oldest_first=True)
    ) == ["e3", "e4"]
    assert ids(await store.list_events(agent="a", event_ids=["e4", "e0"], oldest_first=True)) == [
        "e0",
        "e4",
    ]
    assert ids(await store.list_events(agent="a", topic="other")) == []


async def test_dead_letters_are_filtered_and_fetched_by_id(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    first = await kill(store, "e1")
    clock.advance(100)
    second = await kill(store, "e2", key="other")
    assert [d.id for d in await store.dead_letters(agent="a")] == [second, first]
    assert [d.id for d in await store.dead_letters(key="other")] == [second]
    assert [
        d.id for d in await store.dead_letters(failure_class="agent_error", since=clock.now)
    ] == [second]
    assert [d.id for d in await store.dead_letters(until=clock.now)] == [first]
    assert await store.dead_letters(failure_class="semantic") == []
    letter = await store.get_dead_letter(first)
    assert letter is not None and letter.envelope == {"n": "e1"} and letter.status == "dead"
    assert await store.get_dead_letter(first + second + 100) is None


async def test_a_resume_redrive_resets_attempts_keeps_steps_and_queues_the_republish(make_store):
    store = await make_store(FakeClock())
    dlq_id = await kill(store, "e1")
    republish = OutgoingRecord("tickets", b"customer-1", b"orig", (("h", b"1"),), "redrive:1")
    assert await store.redrive("a", "e1", mode=RedriveMode.RESUME, republish=[republish])
    letter = await store.get_dead_letter(dlq_id)
    assert letter is not None and letter.status == "redriven"
    assert republish in [r.record for r in await store.outbox("a", "e1")]
    claim = await store.claim("a", "e1", owner="w2", lease_s=5, meta=META)
    assert (claim.status, claim.attempts) == (ClaimStatus.CLAIMED, 1)
    assert [s.result for s in claim.steps] == ["recorded"]
    await store.complete("a", "e1", claim.epoch, Completion(result="fixed"))
    letter = await store.get_dead_letter(dlq_id)
    assert letter is not None and letter.status == "resolved"


async def test_a_fresh_redrive_forgets_the_recorded_steps(make_store):
    store = await make_store(FakeClock())
    await kill(store, "e1")
    assert await store.redrive("a", "e1", mode=RedriveMode.FRESH)
    claim = await store.claim("a", "e1", owner="w2", lease_s=5, meta=META)
    assert (claim.status, claim.steps) == (ClaimStatus.CLAIMED, ())


async def test_redriving_an_event_that_is_not_dead_changes_nothing(make_store):
    store = await make_store(FakeClock())
    claim = await store.claim("a", "done", owner="w", lease_s=5, meta=META)
    await store.complete("a", "done", claim.epoch, Completion(result="kept"))
    rec = OutgoingRecord("tickets", None, b"x", (), "redrive:x")
    assert not await store.redrive("a", "done", mode=RedriveMode.FRESH, republish=[rec])
    assert not await store.redrive("a", "missing", mode=RedriveMode.RESUME)
    record = await store.get_event("a", "done")
    assert record is not None and (record.state, record.result) == (EventState.COMPLETED, "kept")
    assert await store.outbox("a", "done") == []
    await kill(store, "e1")
    assert await store.redrive("a", "e1", mode=RedriveMode.RESUME)
    assert not await store.redrive("a", "e1", mode=RedriveMode.RESUME)  # a second redrive races


async def test_a_redriven_event_that_fails_again_supersedes_its_old_dead_letter(make_store):
    store = await make_store(FakeClock())
    first = await kill(store, "e1")
    await store.redrive("a", "e1", mode=RedriveMode.RESUME)
    second = await kill(store, "e1")
    statuses = {d.id: d.status for d in await store.dead_letters(agent="a")}
    assert statuses == {first: "superseded", second: "dead"}


async def test_later_events_of_a_blocked_key_are_parked_in_order_until_redrive(make_store):
    store = await make_store(FakeClock())
    assert not await store.park("a", "early", "customer-1", message(1))
    await kill(store, "e1")
    assert await store.blocked_by("a", "customer-1") == "e1"
    assert await store.blocked_by("a", "other") is None
    assert await store.park("a", "e2", "customer-1", message(2))
    assert await store.park("a", "e3", "customer-1", message(3))
    assert await store.park("a", "e2", "customer-1", message(2))  # redelivered: one row
    assert not await store.park("a", "e1", "customer-1", message(1))  # the blocker itself
    assert not await store.park("a", "x", "other", message(9))
    parked = await store.parked("a", key="customer-1")
    assert [(p.event_id, p.message) for p in parked] == [("e2", message(2)), ("e3", message(3))]
    assert await store.parked("a", releasable=True) == []
    assert (await store.counts("a"))["parked"] == 2
    await store.redrive("a", "e1", mode=RedriveMode.RESUME)
    assert await store.blocked_by("a", "customer-1") == "e1"  # until the redrive completes
    assert await store.parked("a", releasable=True) == []
    claim = await store.claim("a", "e1", owner="w", lease_s=5, meta=META)
    await store.complete("a", "e1", claim.epoch, Completion())
    assert await store.blocked_by("a", "customer-1") is None
    released = await store.parked("a", releasable=True)
    assert [p.event_id for p in released] == ["e2", "e3"]
    # while parked events remain, newcomers queue behind them
    assert await store.park("a", "e4", "customer-1", message(4))
    await store.unpark("a", released[0].id)
    assert [p.event_id for p in await store.parked("a", key="customer-1")] == ["e3", "e4"]


async def test_discarding_a_dead_letter_releases_its_key(make_store):
    store = await make_store(FakeClock())
    dlq_id = await kill(store, "e1")
    await store.park("a", "e2", "customer-1", message(2))
    assert await store.discard("a", "e1")
    assert not await store.discard("a", "e1")
    letter = await store.get_dead_letter(dlq_id)
    assert letter is not None and letter.status == "discarded"
    record = await store.get_event("a", "e1")
    assert record is not None and record.state == EventState.DEAD
    assert [p.event_id for p in await store.parked("a", releasable=True)] == ["e2"]


async def test_prune_deletes_only_finished_history_older_than_the_horizon(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    old = await store.claim("a", "old", owner="w", lease_s=5, meta=META)
    await store.write_step("a", "old", old.epoch, step(0))
    out = OutgoingRecord("out", None, b"v", (), "a:old:0")
    await store.complete("a", "old", old.epoch, Completion(outputs=[out]))
    unpublished = await store.claim("a", "unpublished", owner="w", lease_s=5, meta=META)
    out2 = OutgoingRecord("out", None, b"v", (), "a:unpublished:0")
    await store.complete("a", "unpublished", unpublished.epoch, Completion(outputs=[out2]))
    rows = await store.claim_outbox("r", limit=10, lease_s=5)
    await store.mark_published([r.id for r in rows if r.record.dedupe_id == "a:old:0"])
    await kill(store, "dead")
    closed = await kill(store, "closed", key="k2")
    await store.discard("a", "closed")
    await store.save_shadow_run(ShadowRun("run-old", "a", "cand:app", clock.now))
    clock.advance(1000)
    recent = await store.claim("a", "recent", owner="w", lease_s=5, meta=META)
    await store.complete("a", "recent", recent.epoch, Completion())
    deleted = await store.prune(before=clock.now - 500)
    assert deleted["events"] == 1 and deleted["steps"] == 1 and deleted["outbox"] == 1
    assert deleted["dead_letters"] == 1 and deleted["shadow_runs"] == 1
    assert await store.get_event("a", "old") is None
    for kept in ("unpublished", "dead", "closed", "recent"):
        assert await store.get_event("a", kept) is not None, kept
    assert await store.get_dead_letter(closed) is None
    assert [d.event_id for d in await store.dead_letters(agent="a")] == ["dead"]
    # a pruned event is new to the journal again: prune only past the broker's horizon
    assert (
        await store.claim("a", "recent", owner="w", lease_s=5, meta=META)
    ).status == ClaimStatus.COMPLETED


async def test_shadow_runs_and_results_are_stored_under_their_run_id(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    run = ShadowRun("run-1", "a", "cand:app", clock.now)
    await store.save_shadow_run(run)
    await store.write_shadow_results(
        [ShadowResult("run-1", "e2", {"same": False}), ShadowResult("run-1", "e1", {"same": True})]
    )
    await store.write_shadow_results([ShadowResult("run-1", "e2", {"same": True, "v": 2})])
    finished = ShadowRun("run-1", "a", "cand:app", run.created_at, clock.now + 5, {"rate": 0.5})
    await store.save_shadow_run(finished)
    assert await store.shadow_runs(run_id="run-1") == [finished]
    assert [(r.event_id, r.report) for r in await store.shadow_results("run-1")] == [
        ("e2", {"same": True, "v": 2}),
        ("e1", {"same": True}),
    ]
    assert await store.shadow_results("other") == []
    assert await store.list_events() == []  # nothing live was touched


async def test_deliveries_count_grants_and_duplicates_but_not_busy_rechecks(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    claim = await store.claim("a", "e1", owner="w1", lease_s=5, meta=META)
    for _ in range(3):
        assert (
            await store.claim("a", "e1", owner="w2", lease_s=5, meta=META)
        ).status == ClaimStatus.BUSY
    await store.complete("a", "e1", claim.epoch, Completion())
    await store.claim("a", "e1", owner="w2", lease_s=5, meta=META)
    record = await store.get_event("a", "e1")
    assert record is not None and record.deliveries == 2


async def test_claim_many_answers_in_order_and_grants_a_repeated_id_once(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    done = await store.claim("a", "done", owner="w", lease_s=5, meta=META)
    await store.complete("a", "done", done.epoch, Completion())
    answers = await store.claim_many(
        "a", [("new", META), ("done", META), ("new", META), ("other", META)], owner="w", lease_s=5
    )
    assert [a.status for a in answers] == [
        ClaimStatus.CLAIMED,
        ClaimStatus.COMPLETED,
        ClaimStatus.BUSY,
        ClaimStatus.CLAIMED,
    ]


async def test_complete_many_fences_each_item_on_its_own(make_store):
    clock = FakeClock()
    store = await make_store(clock)
    good = await store.claim("a", "good", owner="w", lease_s=5, meta=META)
    stale = await store.claim("a", "stale", owner="w", lease_s=5, meta=META)
    clock.advance(6)
    await store.claim("a", "stale", owner="w2", lease_s=5, meta=META)
    errors = await store.complete_many(
        "a",
        [("good", good.epoch, Completion(result=1)), ("stale", stale.epoch, Completion(result=2))],
    )
    assert errors[0] is None and isinstance(errors[1], FencedError)
    assert (await store.get_event("a", "good")).state == EventState.COMPLETED
    assert (await store.get_event("a", "stale")).state == EventState.CLAIMED


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


async def test_prune_deletes_blobs_that_no_remaining_step_references(make_store):
    clock = FakeClock()
    store = await make_store(clock)

    def llm_step(digest: str) -> StepRecord:
        return StepRecord(
            seq=0,
            kind=StepKind.LLM,
            name="llm",
            fingerprint="fp",
            status=StepStatus.DONE,
            request={"model": "m", "messages": [{"$blob": digest}, {"role": "user"}]},
            result={"text": "ok"},
        )

    blobs = {"sha256:old": "a", "sha256:shared": "b", "sha256:orphan": "c"}
    await store.put_blobs(blobs)
    old = await store.claim("a", "old", owner="w", lease_s=5, meta=META)
    await store.write_step("a", "old", old.epoch, llm_step("sha256:old"))
    await store.complete("a", "old", old.epoch, Completion())
    live = await store.claim("a", "live", owner="w", lease_s=5, meta=META)
    await store.write_step("a", "live", live.epoch, llm_step("sha256:shared"))
    clock.advance(1000)
    await store.put_blobs({"sha256:fresh": "d"})
    deleted = await store.prune(before=clock.now - 500)
    assert deleted["blobs"] == 2
    assert await store.get_blobs([*blobs, "sha256:fresh"]) == {
        "sha256:shared": "b",
        "sha256:fresh": "d",
    }


async def test_agents_lists_every_agent_with_an_event_once(make_store):
    store = await make_store(FakeClock())
    assert await store.agents() == []
    for agent, event_id in (("triage", "e1"), ("fraud", "e1"), ("triage", "e2")):
        await store.claim(agent, event_id, owner="w1", lease_s=10, meta=META)
    assert await store.agents() == ["fraud", "triage"]


async def test_steps_and_outbox_of_several_events_read_at_once_match_the_single_reads(make_store):
    store = await make_store(FakeClock())
    for n, event_id in enumerate(["e1", "e2", "e3"]):
        claim = await store.claim("a", event_id, owner="w1", lease_s=5, meta=META)
        for seq in range(n):
            await store.write_step(
                "a", event_id, claim.epoch, step(seq, result=f"{event_id}/{seq}")
            )
        outputs = [
            OutgoingRecord("out", b"k", f"{event_id}/{i}".encode(), (), f"a:{event_id}:{i}")
            for i in range(n)
        ]
        await store.complete("a", event_id, claim.epoch, Completion(outputs=outputs, result=n))
    ids = ["e3", "e1", "e2", "missing"]
    steps = await store.steps_of("a", ids)
    outbox = await store.outbox_of("a", ids)
    assert set(steps) == set(outbox) == set(ids)
    for event_id in ids:
        assert steps[event_id] == await store.steps("a", event_id)
        assert outbox[event_id] == await store.outbox("a", event_id)
    assert steps["missing"] == [] and len(steps["e3"]) == 2 and len(outbox["e3"]) == 2


async def test_unpriced_model_calls_are_counted_per_agent_and_model(make_store):
    store = await make_store(FakeClock())
    claim = await store.claim("a", "e1", owner="w1", lease_s=10, meta=META)
    for seq, source in enumerate(["unpriced", "provider", "unpriced"]):
        record = step(seq)
        record.kind = StepKind.LLM
        record.meta = {"model": "alias-1", "cost_usd": 0.0, "cost_source": source}
        await store.write_step("a", "e1", claim.epoch, record)
    assert await store.unpriced_calls() == {("a", "alias-1"): 2}
