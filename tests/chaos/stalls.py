"""The stall scenario: workers whose user code blocks and burns CPU, and who get SIGSTOPped.

Two or three ``agentstream run tests.apps.lease_stall_app:app`` processes share one journal. Their
synchronous steps and effects sleep or burn CPU for longer than the lease, and the runner
SIGSTOPs random workers for random bursts (shorter than an effect's deadline) and continues
them. Nobody is killed: every worker stays alive, so a second model call or a second effect
row can only come from two live workers racing. Afterwards :func:`verify_stalls` checks:

1. every event completed, exactly one model decision journaled for each;
2. every effect row at most once per (event, effect), and exactly the recorded decision's
   effects (``notify`` always, ``refund`` when the decision says so);
3. every execution of the handler saw the journal's decision;
4. no model call for a recorded step was made by two workers unless the first was stopped
   around it (a stopped worker is not live), and the journaled answer is the last call made,
   but for calls sent by a worker just before it was stopped and answered after it resumed.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentstream.backends import Backends
from agentstream.event import OutgoingRecord
from agentstream.journal import EventState, StepKind
from agentstream.llm.simulator import CallLog
from tests.chaos.harness import REPO, ChaosPlan, Workers, make_tickets
from tests.chaos.world import World, read_world


@dataclass
class StallPlan:
    """What to run and how hard to stall it."""

    broker: str
    store: str
    workdir: Path
    events: int = 120
    keys: int = 30
    workers: int = 3
    lease_s: float = 1.5
    slow_s: float = 2.2
    stop_s: tuple[float, float] = (0.3, 3.0)
    stop_gap_s: tuple[float, float] = (0.5, 2.0)
    feed_s: float = 6.0
    deadline_s: float = 150.0
    seed: int = 11


@dataclass
class StallReport:
    """What happened in a run, and what broke (empty lists when nothing did)."""

    events: int
    completed: int
    stops: int
    stopped_s: float
    effect_rows: int
    llm_calls: int
    llm_steps: int
    elapsed_s: float
    doubled_effects: dict[str, int] = field(default_factory=dict)
    wrong_effects: list[str] = field(default_factory=list)
    conflicting_decisions: list[str] = field(default_factory=list)
    live_double_calls: list[str] = field(default_factory=list)
    stale_answers: list[str] = field(default_factory=list)
    not_completed: dict[str, str] = field(default_factory=dict)

    def broken(self) -> bool:
        """Whether any invariant failed."""
        return bool(
            self.doubled_effects
            or self.wrong_effects
            or self.conflicting_decisions
            or self.live_double_calls
            or self.stale_answers
            or self.not_completed
        )

    def line(self) -> str:
        """A one-line summary."""
        return (
            f"{self.completed}/{self.events} completed; {self.stops} SIGSTOP bursts "
            f"({self.stopped_s:.1f}s stopped); {self.effect_rows} effect rows, "
            f"{len(self.doubled_effects)} doubled, {len(self.wrong_effects)} wrong; "
            f"{self.llm_calls} model calls for {self.llm_steps} recorded steps, "
            f"{len(self.live_double_calls)} made twice by live workers; "
            f"{len(self.conflicting_decisions)} events saw conflicting decisions; "
            f"{self.elapsed_s:.0f}s"
        )


async def run_stalls(plan: StallPlan) -> StallReport:
    """Feed the tickets, stall the workers until the journal has settled, then verify."""
    world_path = plan.workdir / "world.db"
    World(world_path).close()  # the tables exist before anything reads them
    calls_path = plan.workdir / "calls.db"
    env = {
        **os.environ,
        "STALL_BROKER": plan.broker,
        "STALL_STORE": plan.store,
        "STALL_WORLD": str(world_path),
        "STALL_CALLS": str(calls_path),
        "STALL_LEASE_S": str(plan.lease_s),
        "STALL_SLOW_S": str(plan.slow_s),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    chaos = ChaosPlan(plan.broker, plan.store, plan.workdir, events=plan.events, keys=plan.keys)
    chaos.duplicate_ratio = 0.0
    chaos.seed = plan.seed
    stream, _ = make_tickets(chaos)
    backends = Backends(plan.broker, plan.store)
    transport = backends.transport()
    store = backends.store()
    await transport.start()
    await store.open()
    workers = Workers(chaos, env, app="tests.apps.lease_stall_app:app")
    rng = random.Random(plan.seed)
    stops: list[tuple[int, float, float]] = []  # (pid, stopped at, continued at)
    started = time.monotonic()
    try:
        for _ in range(plan.workers):
            workers.start_one()
        records = [
            OutgoingRecord("tickets", t["customer_id"].encode(), json.dumps(t).encode())
            for t in stream
        ]
        chunks = 10
        per = -(-len(records) // chunks)
        fed = 0
        next_feed = time.monotonic()
        next_stop = time.monotonic() + rng.uniform(*plan.stop_gap_s)
        while True:
            now = time.monotonic()
            if fed < len(records) and now >= next_feed:
                await transport.produce(records[fed : fed + per])
                fed += per
                next_feed = now + plan.feed_s / chunks
            if now >= next_stop:
                stops.append(await _stop_one(workers, rng, plan))
                next_stop = time.monotonic() + rng.uniform(*plan.stop_gap_s)
            if fed >= len(records):
                counts = await store.counts("triage")
                if counts["completed"] + counts["dead"] >= plan.events:
                    break
            if time.monotonic() - started > plan.deadline_s:
                break  # verify reports what is not done
            await asyncio.sleep(0.1)
    finally:
        workers.stop()
        await transport.close()
        await store.close()
    return await verify_stalls(plan, stream, stops, time.monotonic() - started)


async def _stop_one(
    workers: Workers, rng: random.Random, plan: StallPlan
) -> tuple[int, float, float]:
    proc = rng.choice([p for p in workers.procs if p.poll() is None])
    length = rng.uniform(*plan.stop_s)
    at = time.time()
    proc.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(length)
    finally:
        proc.send_signal(signal.SIGCONT)
    return proc.pid, at, time.time()


async def verify_stalls(
    plan: StallPlan,
    stream: list[dict[str, Any]],
    stops: list[tuple[int, float, float]],
    elapsed_s: float,
) -> StallReport:
    """Check the invariants against the journal, the world file and the model's call log."""
    store = Backends(plan.broker, plan.store).store()
    await store.open()
    try:
        records = {t["ticket_id"]: await store.get_event("triage", t["ticket_id"]) for t in stream}
        steps = {t: await store.steps("triage", t) for t in records}
    finally:
        await store.close()
    world = read_world(plan.workdir / "world.db")
    calls = CallLog.read(plan.workdir / "calls.db")
    report = StallReport(
        events=len(records),
        completed=sum(1 for r in records.values() if r and r.state == EventState.COMPLETED),
        stops=len(stops),
        stopped_s=sum(end - start for _, start, end in stops),
        effect_rows=len(world["effects"]),
        llm_calls=len(calls),
        llm_steps=sum(1 for s in steps.values() for x in s if x.kind == StepKind.LLM),
        elapsed_s=elapsed_s,
    )
    # 1. everything completed, one decision each
    for ticket_id, rec in records.items():
        if rec is None or rec.state != EventState.COMPLETED:
            report.not_completed[ticket_id] = "missing" if rec is None else str(rec.state)
    # 2. effects: at most once per (event, effect), exactly those the decision asked for
    rows = collections.Counter((r["ticket_id"], r["effect"]) for r in world["effects"])
    report.doubled_effects = {f"{t}/{e}": n for (t, e), n in rows.items() if n > 1}
    for ticket_id, rec in records.items():
        if rec is None or rec.state != EventState.COMPLETED:
            continue
        wanted = {"notify": 1, "refund": 1 if rec.result["refund"] else 0}
        for effect, n in wanted.items():
            if min(rows[(ticket_id, effect)], 1) != n:
                report.wrong_effects.append(f"{ticket_id}/{effect}: {rows[(ticket_id, effect)]}")
    # 3. every execution saw the journal's decision
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for obs in world["observations"]:
        seen[obs["ticket_id"]].add(json.dumps(json.loads(obs["decision"]), sort_keys=True))
    for ticket_id, decisions in seen.items():
        rec = records.get(ticket_id)
        recorded = {json.dumps(rec.result, sort_keys=True)} if rec and rec.result else set()
        if len(decisions) > 1 or (recorded and decisions != recorded):
            report.conflicting_decisions.append(ticket_id)
    # 4. model calls: never by two live workers for one step; the journaled answer is the last
    by_step: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for call in calls:
        by_step[call["step_key"]].append(call)
    margin = plan.lease_s * 2 + 2.0

    def stopped_around(pid: int, since: float, until: float) -> bool:
        """Whether ``pid`` was stopped at some time in ``[since - margin, until]``."""
        return any(p == pid and start < until and end > since - margin for p, start, end in stops)

    for key, made in by_step.items():
        for first, later in itertools.pairwise(made):
            if first["pid"] != later["pid"] and not stopped_around(
                first["pid"], first["at"], later["at"]
            ):
                report.live_double_calls.append(key)
    for ticket_id, event_steps in steps.items():
        for step in event_steps:
            if step.kind != StepKind.LLM:
                continue
            made = by_step.get(f"triage/{ticket_id}/{step.seq}", [])
            ids = [c["response_id"] for c in made]
            # A call sent before its worker was stopped may answer after the successor's: only
            # such calls may come after the recorded one.
            after = made[ids.index(step.result["id"]) + 1 :] if step.result["id"] in ids else None
            if after is None or any(not stopped_around(c["pid"], c["at"], c["at"]) for c in after):
                report.stale_answers.append(f"{ticket_id}/{step.seq}")
    return report
