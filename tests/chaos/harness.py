"""Chaos harness: run the chaos app in worker processes, SIGKILL them, check every invariant.

Backend-neutral: the caller passes broker and journal URLs, a way to produce records and a way
to read the output topic; the harness starts ``agentstream run tests.apps.chaos_app:app``
subprocesses, kills them at chosen points (the app kills itself there, once each) and at random,
restarts them, waits until the journal has settled every event, and then checks:

1. every event is completed or dead-lettered (nothing lost, nothing stuck);
2. every refund happened exactly once (counted by the effect itself), and only for events whose
   recorded decision asked for one;
3. every execution of the handler and every output record of an event saw the same decision,
   equal to the journal's;
4. no recorded LLM step was ever executed again (the journaled response is the last call the
   simulator saw for that step);
5. events of one key were processed in order.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentstream.backends import Backends
from agentstream.event import OutgoingRecord
from agentstream.journal import EventState, StepKind
from agentstream.llm.simulator import CallLog
from tests.chaos.world import read_world

REPO = Path(__file__).resolve().parents[2]
KILL_POINTS = ("before_llm", "after_llm", "after_effect", "after_complete")


@dataclass
class ChaosPlan:
    """What to run and how hard to hit it."""

    broker: str
    store: str
    workdir: Path
    events: int = 1000
    keys: int = 50
    duplicate_ratio: float = 0.12
    workers: int = 1
    random_kills: int = 4
    kill_interval_s: tuple[float, float] = (1.0, 2.5)
    chosen_per_point: int = 2
    latency_ms: float = 20.0
    feed_s: float = 8.0
    lease_s: float = 2.0
    concurrency: int = 16
    partitions: int = 8
    deadline_s: float = 240.0
    seed: int = 7
    source: str = "tickets"
    output: str = "decisions"
    dlq: str = "tickets.dlq"
    extra_env: dict[str, str] = field(default_factory=dict)
    app: str = "tests.apps.chaos_app:app"
    extra_points: tuple[str, ...] = ()


@dataclass
class ChaosReport:
    """What happened in a run (printed by the tests, checked by :func:`verify`)."""

    unique_events: int
    produced: int
    duplicates: int
    chosen_kills: int
    random_kills: int
    restarts: int
    completed: int
    dead: int
    refunds: int
    observations: int
    llm_calls: int
    llm_steps: int
    outputs: int
    redelivered_executions: int
    elapsed_s: float
    deliveries: int = 0
    rebalances: int = 0
    points_fired: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        """A one-line summary."""
        return (
            f"{self.unique_events} events ({self.duplicates} duplicates), "
            f"kills: {self.chosen_kills} chosen + {self.random_kills} random, "
            f"{self.restarts} restarts; completed {self.completed}, dead {self.dead}; "
            f"refunds {self.refunds}; LLM calls {self.llm_calls} for {self.llm_steps} recorded "
            f"steps; handler re-executions after crashes {self.redelivered_executions}; "
            f"{self.outputs} output records; {self.deliveries} deliveries "
            f"({self.deliveries - self.produced} redeliveries); {self.rebalances} rebalances "
            f"(assignments + revocations); kill points fired {self.points_fired}; "
            f"{self.elapsed_s:.1f}s"
        )


def make_tickets(plan: ChaosPlan) -> tuple[list[dict[str, Any]], int]:
    """Tickets with per-key sequence numbers, plus duplicates re-sent later in the stream."""
    rng = random.Random(plan.seed)
    tickets: list[dict[str, Any]] = []
    seqs: collections.Counter[str] = collections.Counter()
    for i in range(plan.events):
        customer = f"c{rng.randrange(plan.keys):04d}"
        seqs[customer] += 1
        tickets.append(
            {
                "ticket_id": f"T{i:05d}",
                "customer_id": customer,
                "seq": seqs[customer],
                "text": f"ticket {i} from {customer}: my order is late and I was charged twice",
            }
        )
    stream = list(tickets)
    n_dup = int(plan.events * plan.duplicate_ratio)
    for original in rng.sample(tickets, n_dup):
        # A producer retry: same identity, new offset, somewhere later in the stream.
        at = rng.randrange(stream.index(original) + 1, len(stream) + 1)
        stream.insert(at, dict(original))
    return stream, n_dup


def kill_plan(plan: ChaosPlan) -> str:
    """Chosen kill points spread over the stream, ``chosen_per_point`` of each.

    ``after_effect`` is planned by refund count (``#n``: right after the n-th refund), because
    which tickets refund depends on the model's random decisions.
    """
    rng = random.Random(plan.seed + 1)
    n = plan.chosen_per_point
    items = []
    for point in ("before_llm", "after_llm", "after_complete", *plan.extra_points):
        for ticket in rng.sample(range(plan.events // 10, plan.events), n):
            items.append(f"{point}:T{ticket:05d}")
    # About a third of the events refund; keep the planned counts well inside that.
    for k in rng.sample(range(plan.events // 20, plan.events // 4), n):
        items.append(f"after_effect:#{k}")
    return ",".join(items)


class Workers:
    """The worker processes."""

    def __init__(
        self, plan: ChaosPlan, env: dict[str, str], app: str = "tests.apps.chaos_app:app"
    ) -> None:
        self.plan = plan
        self.env = env
        self.app = app
        self.procs: list[subprocess.Popen[bytes]] = []
        self.restarts = 0
        self.self_kills = 0
        self.logs = plan.workdir / "logs"
        self.logs.mkdir(exist_ok=True)

    def start_one(self) -> subprocess.Popen[bytes]:
        n = len(list(self.logs.iterdir()))
        with (self.logs / f"worker-{n:03d}.log").open("wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agentstream",
                    "run",
                    self.app,
                    "--log-level",
                    "WARNING",
                ],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def reap(self) -> None:
        """Restart workers that died (chosen kill points)."""
        for proc in list(self.procs):
            code = proc.poll()
            if code is not None:
                self.procs.remove(proc)
                if code == -signal.SIGKILL:
                    self.self_kills += 1
                self.restarts += 1
                self.start_one()

    def kill_random(self, rng: random.Random) -> None:
        live = [p for p in self.procs if p.poll() is None]
        if not live:
            return
        victim = rng.choice(live)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.procs.remove(victim)
        self.restarts += 1
        self.start_one()

    def stop(self) -> list[int]:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(30))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        return codes


async def run_chaos(
    plan: ChaosPlan,
    *,
    produce: Callable[[list[OutgoingRecord]], Awaitable[None]] | None = None,
    settled: Callable[[], Awaitable[bool]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the chaos scenario; return the stream produced and run facts for :func:`verify`."""
    stream, n_dup = make_tickets(plan)
    world_path = plan.workdir / "world.db"
    calls_path = plan.workdir / "calls.db"
    env = {
        **os.environ,
        "CHAOS_BROKER": plan.broker,
        "CHAOS_STORE": plan.store,
        "CHAOS_WORLD": str(world_path),
        "CHAOS_CALLS": str(calls_path),
        "CHAOS_KILL_PLAN": kill_plan(plan),
        "CHAOS_LATENCY_MS": str(plan.latency_ms),
        "CHAOS_LEASE_S": str(plan.lease_s),
        "CHAOS_CONCURRENCY": str(plan.concurrency),
        "CHAOS_PARTITIONS": str(plan.partitions),
        "CHAOS_SOURCE": plan.source,
        "CHAOS_OUTPUT": plan.output,
        "CHAOS_DLQ": plan.dlq,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        **plan.extra_env,
    }
    backends = Backends(plan.broker, plan.store)
    if produce is None:
        transport = backends.transport()
        await transport.start()

        async def produce(records: list[OutgoingRecord]) -> None:
            await transport.produce(records)
    else:
        transport = None
    records = [
        OutgoingRecord(plan.source, t["customer_id"].encode(), json.dumps(t).encode())
        for t in stream
    ]
    started = time.monotonic()
    workers = Workers(plan, env, plan.app)
    rng = random.Random(plan.seed + 2)
    store = backends.store()
    await store.open()
    try:
        for _ in range(plan.workers):
            workers.start_one()
        chunks = 20
        per = -(-len(records) // chunks)
        feed_gap = plan.feed_s / chunks
        random_kills = 0
        next_kill = time.monotonic() + rng.uniform(*plan.kill_interval_s)
        fed = 0
        while True:
            if fed < len(records):
                await produce(records[fed : fed + per])
                fed += per
            await asyncio.sleep(feed_gap if fed < len(records) else 0.2)
            workers.reap()
            if random_kills < plan.random_kills and time.monotonic() >= next_kill:
                workers.kill_random(rng)
                random_kills += 1
                next_kill = time.monotonic() + rng.uniform(*plan.kill_interval_s)
            if fed >= len(records) and random_kills >= plan.random_kills:
                counts = await store.counts("triage")
                done = counts["completed"] + counts["dead"]
                if (
                    done >= plan.events
                    and counts["outbox_pending"] == 0
                    and (settled is None or await settled())
                ):
                    break
            if time.monotonic() - started > plan.deadline_s:
                counts = await store.counts("triage")
                raise AssertionError(f"chaos run did not settle in {plan.deadline_s}s: {counts}")
        # Let the last offset commits land, then stop gracefully.
        await asyncio.sleep(1.0)
        workers.stop()
    finally:
        for p in workers.procs:
            if p.poll() is None:
                p.kill()
        if transport is not None:
            await transport.close()
        await store.close()
    facts = {
        "n_dup": n_dup,
        "random_kills": random_kills,
        "self_kills": workers.self_kills,
        "restarts": workers.restarts,
        "elapsed_s": time.monotonic() - started,
        "world": str(world_path),
        "calls": str(calls_path),
        "logs": str(workers.logs),
    }
    return stream, facts


async def verify(
    plan: ChaosPlan,
    stream: list[dict[str, Any]],
    facts: dict[str, Any],
    outputs: list[tuple[str, bytes]],
    *,
    sim_key: Callable[[str], str] = lambda step_key: step_key,
) -> ChaosReport:
    """Check every invariant; raise AssertionError with the evidence when one breaks.

    ``sim_key`` turns a step key into the key the simulator logged for it (the journaled HTTP
    transport sends a digest of the step key as its ``Idempotency-Key``).
    """
    unique = {t["ticket_id"]: t for t in stream}
    backends = Backends(plan.broker, plan.store)
    store = backends.store()
    await store.open()
    try:
        records = {}
        steps_by_event = {}
        for ticket_id in unique:
            rec = await store.get_event("triage", ticket_id)
            assert rec is not None, f"{ticket_id} never reached the journal"
            records[ticket_id] = rec
            steps_by_event[ticket_id] = await store.steps("triage", ticket_id)
    finally:
        await store.close()
    world = read_world(facts["world"])

    # 1. nothing lost, nothing stuck
    stuck = {
        t: r.state
        for t, r in records.items()
        if r.state not in (EventState.COMPLETED, EventState.DEAD)
    }
    assert not stuck, f"events neither completed nor dead: {stuck}"
    completed = {t for t, r in records.items() if r.state == EventState.COMPLETED}
    dead = {t for t, r in records.items() if r.state == EventState.DEAD}

    # 2. each refund exactly once, only where decided
    refunds_by_key = collections.Counter(r["idem_key"] for r in world["refunds"])
    doubled = {k: n for k, n in refunds_by_key.items() if n > 1}
    assert not doubled, f"effects executed more than once: {doubled}"
    refunds_by_ticket = collections.Counter(r["ticket_id"] for r in world["refunds"])
    for ticket_id in completed:
        decision = records[ticket_id].result
        wanted = 1 if decision["refund"] else 0
        assert refunds_by_ticket[ticket_id] == wanted, (
            f"{ticket_id}: decision refund={decision['refund']} but "
            f"{refunds_by_ticket[ticket_id]} refund(s) happened"
        )
    for ticket_id in dead:
        assert refunds_by_ticket[ticket_id] <= 1

    # 3. every execution and every output saw the recorded decision
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for obs in world["observations"]:
        seen[obs["ticket_id"]].add(json.dumps(json.loads(obs["decision"]), sort_keys=True))
    for ticket_id, decisions in seen.items():
        assert len(decisions) == 1, f"{ticket_id} saw conflicting decisions: {decisions}"
        if ticket_id in completed:
            recorded = json.dumps(records[ticket_id].result, sort_keys=True)
            assert decisions == {recorded}, (
                f"{ticket_id}: handler saw {decisions}, journal {recorded}"
            )
    outputs_by_event: dict[str, set[str]] = collections.defaultdict(set)
    for event_id, value in outputs:
        outputs_by_event[event_id].add(json.dumps(json.loads(value), sort_keys=True))
    for ticket_id in completed:
        recorded = json.dumps(records[ticket_id].result, sort_keys=True)
        assert outputs_by_event.get(ticket_id) == {recorded}, (
            f"{ticket_id}: outputs {outputs_by_event.get(ticket_id)} != recorded {recorded}"
        )

    # 4. no recorded LLM step executed again
    calls = CallLog.read(facts["calls"])
    last_call: dict[str, str] = {}
    for call in calls:
        last_call[call["step_key"]] = call["response_id"]
    llm_steps = 0
    for ticket_id, steps in steps_by_event.items():
        for step in steps:
            if step.kind != StepKind.LLM:
                continue
            llm_steps += 1
            key = sim_key(f"triage/{ticket_id}/{step.seq}")
            assert last_call.get(key) == step.result["id"], (
                f"recorded LLM step {key} ({step.result['id']}) was called again "
                f"(last call answered {last_call.get(key)})"
            )

    # 5. per-key order
    by_key: dict[str, list[int]] = collections.defaultdict(list)
    for obs in world["observations"]:
        by_key[obs["customer_id"]].append(obs["seq"])
    for key, seqs in by_key.items():
        assert seqs == sorted(seqs), f"key {key} processed out of order: {seqs}"

    executions = collections.Counter(o["ticket_id"] for o in world["observations"])
    return ChaosReport(
        unique_events=len(unique),
        produced=len(stream),
        duplicates=facts["n_dup"],
        chosen_kills=len(world["kill_marks"]),  # each mark is written just before its SIGKILL
        random_kills=facts["random_kills"],
        restarts=facts["restarts"],
        completed=len(completed),
        dead=len(dead),
        refunds=len(world["refunds"]),
        observations=len(world["observations"]),
        llm_calls=len(calls),
        llm_steps=llm_steps,
        outputs=len(outputs),
        redelivered_executions=sum(n - 1 for n in executions.values()),
        elapsed_s=facts["elapsed_s"],
        points_fired=dict(collections.Counter(m["point"] for m in world["kill_marks"])),
        deliveries=sum(r.deliveries for r in records.values()),
        rebalances=len(world["rebalances"]),
    )
