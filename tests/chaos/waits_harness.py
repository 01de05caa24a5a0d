"""Wait chaos: refunds that wait for approval, workers SIGKILLed while events run and wait.

The app is ``tests.apps.wait_app:app`` (strict ordering). Of the refunds, the big ones wait for
an ``approval`` signal: some get it before they are even produced, some once they are seen
waiting (each approval is sent twice), some never (they time out and escalate). Workers are
restarted after every kill (chosen points in the handler, and at random, also while events
wait). Afterwards :func:`verify_waits` checks:

1. every event completed, with the branch its approval (or its absence) calls for;
2. each payout happened exactly once (counted by the effect itself);
3. no recorded model call was made again;
4. each key's payouts happened in the key's order (strict ordering: later events wait behind
   a waiting one);
5. each event consumed at most one signal, and the offsets were committed past waiting events
   (checked during the run, while events waited).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentstream.backends import Backends
from agentstream.event import OutgoingRecord
from agentstream.journal import EventState, StepKind
from agentstream.journal.signals import send_signal
from agentstream.journal.waits import WaitJournal
from agentstream.llm.simulator import CallLog
from agentstream.transports.lag import GroupInspector
from tests.chaos.harness import REPO, ChaosPlan, Workers
from tests.chaos.world import read_world

AGENT = "refunds"
GROUP = "waitchaos.refunds"


@dataclass
class WaitPlan:
    """What to run: ``events`` refunds of which ``waits`` wait for approval."""

    broker: str
    store: str
    workdir: Path
    events: int = 500
    waits: int = 200
    early: int = 40
    """Approvals sent before their refund is produced."""
    never: int = 40
    """Refunds whose approval never comes (they time out)."""
    keys: int = 100
    workers: int = 2
    random_kills: int = 3
    kill_interval_s: tuple[float, float] = (1.0, 2.5)
    chosen: int = 1
    """Chosen kills per point (after_llm, after_wait, after_effect, after_complete)."""
    timeout_s: float = 3.0
    feed_s: float = 5.0
    lease_s: float = 2.0
    partitions: int = 4
    deadline_s: float = 150.0
    seed: int = 11
    source: str = "refunds"
    output: str = "outcomes"
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class WaitReport:
    """What happened (printed by the tests)."""

    events: int
    waited: int
    branches: dict[str, int]
    random_kills: int
    chosen_kills: int
    kills_while_waiting: int
    restarts: int
    signals_sent: int
    duplicate_signals: int
    most_waiting: int
    committed_past_waiting: bool
    llm_calls: int
    elapsed_s: float

    def line(self) -> str:
        """A one-line summary."""
        return (
            f"{self.events} events, {self.waited} waited; branches {self.branches}; kills "
            f"{self.chosen_kills} chosen + {self.random_kills} random "
            f"({self.kills_while_waiting} while events waited), {self.restarts} restarts; "
            f"{self.signals_sent} signals sent ({self.duplicate_signals} answered duplicate); "
            f"up to {self.most_waiting} waiting at once, offsets committed past them: "
            f"{self.committed_past_waiting}; {self.llm_calls} model calls; {self.elapsed_s:.1f}s"
        )


def make_refunds(plan: WaitPlan) -> tuple[list[dict[str, Any]], dict[str, bool | None]]:
    """The refunds in stream order, and each waiting one's approval (None: never sent)."""
    rng = random.Random(plan.seed)
    seqs: collections.Counter[str] = collections.Counter()
    big = set(rng.sample(range(plan.events), plan.waits))
    refunds = []
    for i in range(plan.events):
        customer = f"k{rng.randrange(plan.keys):03d}"
        seqs[customer] += 1
        cents = rng.randrange(100_01, 900_00) if i in big else rng.randrange(1_00, 100_00)
        refunds.append(
            {"id": f"R{i:04d}", "customer": customer, "seq": seqs[customer], "cents": cents}
        )
    waiting = [r["id"] for r in refunds if r["cents"] > 100_00]
    never = set(rng.sample(waiting, plan.never))
    approvals: dict[str, bool | None] = {
        r: (None if r in never else rng.random() < 0.7) for r in waiting
    }
    return refunds, approvals


def expected_branch(refund: dict[str, Any], approvals: dict[str, bool | None]) -> str:
    """The branch a refund must end in."""
    if refund["cents"] <= 100_00:
        return "auto"
    approval = approvals[refund["id"]]
    return "escalated" if approval is None else "approved" if approval else "denied"


def kill_plan(plan: WaitPlan, refunds: list[dict[str, Any]]) -> str:
    """Chosen self-kills: after the model call, after a wait ended, after the payout, after
    completion (each on events chosen at random, the wait points on waiting events)."""
    rng = random.Random(plan.seed + 1)
    ids = [r["id"] for r in refunds[len(refunds) // 10 :]]
    big = [r["id"] for r in refunds[len(refunds) // 10 :] if r["cents"] > 100_00]
    items = [f"after_llm:{i}" for i in rng.sample(ids, plan.chosen)]
    items += [f"after_wait:{i}" for i in rng.sample(big, plan.chosen)]
    items += [f"after_effect:{i}" for i in rng.sample(big, plan.chosen)]
    items += [f"after_complete:{i}" for i in rng.sample(ids, plan.chosen)]
    return ",".join(items)


async def _committed_past(inspector: Any, topic: str, waiting: list[Any]) -> bool | None:
    """Whether the group's committed offsets are past every waiting event (None: unknown)."""
    if not isinstance(inspector, GroupInspector):
        return None
    offsets = await inspector.group_offsets(GROUP, [topic])
    committed = {tp[1]: c for tp, (c, _end) in offsets.items()}
    return all(
        row.message is not None and (committed.get(row.message.partition) or 0) > row.message.offset
        for row in waiting
    )


async def run_wait_chaos(
    plan: WaitPlan, *, source_done: Callable[[], Awaitable[bool]] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the scenario; return the refunds and run facts for :func:`verify_waits`.

    ``source_done`` says whether every produced message is acknowledged at the broker (default:
    the consumer group's committed lag is 0, where the broker can tell).
    """
    refunds, approvals = make_refunds(plan)
    world_path, calls_path = plan.workdir / "world.db", plan.workdir / "calls.db"
    env = {
        **os.environ,
        "CHAOS_BROKER": plan.broker,
        "CHAOS_STORE": plan.store,
        "CHAOS_WORLD": str(world_path),
        "CHAOS_CALLS": str(calls_path),
        "CHAOS_KILL_PLAN": kill_plan(plan, refunds),
        "CHAOS_TIMEOUT_S": str(plan.timeout_s),
        "CHAOS_LEASE_S": str(plan.lease_s),
        "CHAOS_PARTITIONS": str(plan.partitions),
        "CHAOS_SOURCE": plan.source,
        "CHAOS_OUTPUT": plan.output,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        **plan.extra_env,
    }
    backends = Backends(plan.broker, plan.store)
    transport = backends.transport()
    await transport.start()
    inspector = backends.transport() if source_done is None else None
    if inspector is not None:
        await inspector.start()
    store = backends.store()
    await store.open()
    assert isinstance(store, WaitJournal)
    rng = random.Random(plan.seed + 2)
    early = set(rng.sample([r for r, a in approvals.items() if a is not None], plan.early))
    sent: set[str] = set()
    facts: dict[str, Any] = {"signals": 0, "duplicates": 0, "kills_waiting": 0, "most": 0}
    facts["committed_past_waiting"] = None

    async def approve(refund_id: str) -> None:
        for _ in range(2):  # every approval is sent twice
            receipt = await send_signal(
                store, AGENT, refund_id, "approval", {"approved": approvals[refund_id]},
                unknown_ok=True,
            )  # fmt: skip
            facts["signals"] += 1
            facts["duplicates"] += receipt.status == "duplicate"

    for refund_id in sorted(early):
        await approve(refund_id)
        sent.add(refund_id)
    records = [
        OutgoingRecord(plan.source, r["customer"].encode(), json.dumps(r).encode()) for r in refunds
    ]
    started = time.monotonic()
    workers = Workers(
        ChaosPlan(plan.broker, plan.store, plan.workdir), env, "tests.apps.wait_app:app"
    )
    try:
        for _ in range(plan.workers):
            workers.start_one()
        chunks, fed, random_kills = 20, 0, 0
        per = -(-len(records) // chunks)
        next_kill = time.monotonic() + rng.uniform(*plan.kill_interval_s)
        while True:
            if fed < len(records):
                await transport.produce(records[fed : fed + per])
                fed += per
            await asyncio.sleep(plan.feed_s / chunks if fed < len(records) else 0.2)
            workers.reap()
            waiting = await store.waiting(AGENT, limit=None)
            facts["most"] = max(facts["most"], len(waiting))
            for row in waiting:
                if row.event_id not in sent and approvals.get(row.event_id) is not None:
                    await approve(row.event_id)
                    sent.add(row.event_id)
            due = random_kills < plan.random_kills and time.monotonic() >= next_kill
            if due and (waiting or facts["kills_waiting"]):  # the first one while events wait
                facts["kills_waiting"] += bool(waiting)
                workers.kill_random(rng)
                random_kills += 1
                next_kill = time.monotonic() + rng.uniform(*plan.kill_interval_s)
            if waiting and facts["committed_past_waiting"] is None:
                if source_done is not None:
                    past = await source_done()
                else:
                    past = await _committed_past(inspector, plan.source, waiting)
                if past:  # the broker has moved past every event that waits
                    facts["committed_past_waiting"] = len(waiting)
            counts = await store.counts(AGENT)
            if os.environ.get("WAIT_CHAOS_TRACE") and int(time.monotonic() - started) % 5 == 0:
                print(f"{time.monotonic() - started:5.1f}s fed={fed} {counts}", flush=True)
            if (
                fed >= len(records)
                and random_kills >= plan.random_kills
                and counts["completed"] + counts["dead"] >= plan.events
                and counts["outbox_pending"] == 0
            ):
                break
            if time.monotonic() - started > plan.deadline_s:
                raise AssertionError(f"wait chaos did not settle in {plan.deadline_s}s: {counts}")
        await asyncio.sleep(1.0)
        workers.stop()
    finally:
        for p in workers.procs:
            if p.poll() is None:
                p.kill()
        await transport.close()
        if inspector is not None:
            await inspector.close()
        await store.close()
    facts.update(
        approvals=approvals,
        random_kills=random_kills,
        self_kills=workers.self_kills,
        restarts=workers.restarts,
        elapsed_s=time.monotonic() - started,
        world=str(world_path),
        calls=str(calls_path),
    )
    return refunds, facts


async def verify_waits(
    plan: WaitPlan,
    refunds: list[dict[str, Any]],
    facts: dict[str, Any],
    outputs: list[tuple[str, bytes]],
) -> WaitReport:
    """Check every invariant; raise AssertionError with the evidence when one breaks."""
    approvals = facts["approvals"]
    store = Backends(plan.broker, plan.store).store()
    await store.open()
    assert isinstance(store, WaitJournal)
    try:
        records, steps, signals = {}, {}, {}
        for r in refunds:
            records[r["id"]] = await store.get_event(AGENT, r["id"])  # type: ignore[attr-defined]
            steps[r["id"]] = await store.steps(AGENT, r["id"])  # type: ignore[attr-defined]
            signals[r["id"]] = await store.signals(AGENT, r["id"])
    finally:
        await store.close()  # type: ignore[attr-defined]
    world = read_world(facts["world"])

    # 1. every event completed, with the right branch (journal and outputs agree)
    stuck = {
        i: (r and r.state)
        for i, r in records.items()
        if r is None or r.state != EventState.COMPLETED
    }
    assert not stuck, f"events not completed: {stuck}"
    for r in refunds:
        want = expected_branch(r, approvals)
        got = records[r["id"]].result["branch"]
        assert got == want, f"{r['id']}: branch {got}, expected {want}"
    out_by_event: dict[str, set[str]] = collections.defaultdict(set)
    for event_id, value in outputs:
        out_by_event[event_id].add(json.loads(value)["branch"])
    for r in refunds:
        assert out_by_event[r["id"]] == {expected_branch(r, approvals)}, (
            r["id"],
            out_by_event[r["id"]],
        )

    # 2. each payout exactly once
    pays = collections.Counter(e["ticket_id"] for e in world["effects"])
    assert all(pays[r["id"]] == 1 for r in refunds), {
        r["id"]: pays[r["id"]] for r in refunds if pays[r["id"]] != 1
    }

    # 3. no recorded model call made again
    last: dict[str, str] = {}
    calls = CallLog.read(facts["calls"])
    for call in calls:
        last[call["step_key"]] = call["response_id"]
    for refund_id, recorded in steps.items():
        for step in recorded:
            if step.kind == StepKind.LLM:
                key = f"{AGENT}/{refund_id}/{step.seq}"
                assert last.get(key) == step.result["id"], f"model call {key} made again"

    # 4. per-key order of the payouts
    by_key: dict[str, list[int]] = collections.defaultdict(list)
    for e in sorted(world["effects"], key=lambda e: e["id"]):
        customer, seq, _ = e["effect"].split(":")
        by_key[customer].append(int(seq))
    for key, seqs in by_key.items():
        if seqs != sorted(seqs):
            ids = {r["id"] for r in refunds if r["customer"] == key}
            trace = [
                (o["ticket_id"], o["outcome"], o["pid"], round(o["at"], 2))
                for o in world["outcomes"]
                if o["ticket_id"] in ids
            ]
            raise AssertionError(f"key {key} paid out of order: {seqs}; deliveries: {trace}")

    # 5. one consumed signal at most per event; offsets moved past waiting events
    for refund_id, sigs in signals.items():
        assert sum(s.status == "consumed" for s in sigs) <= 1, (refund_id, sigs)
    committed = facts["committed_past_waiting"]
    waited = sum(1 for r in refunds if r["cents"] > 100_00)
    branches = collections.Counter(rec.result["branch"] for rec in records.values())
    return WaitReport(
        events=len(refunds),
        waited=waited,
        branches=dict(branches),
        random_kills=facts["random_kills"],
        chosen_kills=len(world["kill_marks"]),
        kills_while_waiting=facts["kills_waiting"],
        restarts=facts["restarts"],
        signals_sent=facts["signals"],
        duplicate_signals=facts["duplicates"],
        most_waiting=facts["most"],
        committed_past_waiting=committed is not None,
        llm_calls=len(calls),
        elapsed_s=facts["elapsed_s"],
    )
