"""The zombie scenario, backend-neutral: a worker frozen past its lease wakes up fenced.

Worker A takes a ticket, decides, and holds inside a synchronous step, where the test
SIGSTOPs it. Worker B joins, the partition moves to it once A's session times out, and B
claims the event after A's lease ran out (a new fencing epoch): B replays A's decision and
holds in the same step, its claim live. Then A's gate is opened and A gets SIGCONT: its step
returns and A writes the step's result to the journal with its old epoch, while the event is
claimed (by B). The journal must reject that write by epoch alone, so A's delivery ends
``fenced`` and the journal has no step of A's. Then B is let go: it refunds once and completes.

Every wait is on a condition (a mark in the world file, a journal state); the world file's
tables exist before anything reads them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from agentstream.backends import Backends
from agentstream.event import OutgoingRecord
from agentstream.journal import EventRecord, EventState, StepRecord
from tests.chaos.world import World, read_world

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ZombieSetup:
    """Where the scenario runs."""

    broker: str
    store: str
    workdir: Path
    lease_s: float = 2.0
    session_s: float = 2.0
    source: str = "tickets"
    extra_env: dict[str, str] | None = None


def _worker(setup: ZombieSetup, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ZOMBIE_BROKER": setup.broker,
        "ZOMBIE_STORE": setup.store,
        "ZOMBIE_WORLD": str(setup.workdir / "world.db"),
        "ZOMBIE_CALLS": str(setup.workdir / "calls.db"),
        "ZOMBIE_LEASE_S": str(setup.lease_s),
        "ZOMBIE_SESSION_S": str(setup.session_s),
        "ZOMBIE_SOURCE": setup.source,
        "ZOMBIE_OUTPUT": f"{setup.source}.decisions",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        **(setup.extra_env or {}),
    }
    with (setup.workdir / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "agentstream", "run", "tests.apps.zombie_app:app"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class ZombieResult:
    """What happened to the ticket."""

    zombie_pid: int
    successor_pid: int
    record: EventRecord
    steps: list[StepRecord]
    steps_when_fenced: list[StepRecord]
    refunds: list[dict[str, object]]
    zombie_outcomes: list[str]
    successor_outcomes: list[str]


async def run_zombie(setup: ZombieSetup) -> ZombieResult:
    """Play the scenario for one ticket and return what the journal and the world saw."""
    backends = Backends(setup.broker, setup.store)
    transport = backends.transport()
    store = backends.store()
    await transport.start()
    await store.open()
    world_path = setup.workdir / "world.db"
    world = World(world_path)  # the tables exist before any worker or read touches the file
    ticket = {"ticket_id": "Z1", "customer_id": "c1", "seq": 1, "text": "charged twice, refund"}
    procs: list[subprocess.Popen[bytes]] = []

    def marked(point: str, pid: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            marks = read_world(world_path)["kill_marks"]
            return any(m["point"] == point and m["pid"] == pid for m in marks)

        return check

    def ended(pid: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return any(o["pid"] == pid for o in read_world(world_path)["outcomes"])

        return check

    try:
        zombie = _worker(setup, "zombie")
        procs.append(zombie)
        await transport.produce([OutgoingRecord(setup.source, b"c1", json.dumps(ticket).encode())])
        await _until(marked("hold", zombie.pid), 60, "the first worker to hold in its step")
        zombie.send_signal(signal.SIGSTOP)
        successor = _worker(setup, "successor")
        procs.append(successor)
        await _until(
            marked("hold_successor", successor.pid), 120, "the successor to claim and hold"
        )
        # The successor's claim is live (a newer epoch, state claimed). Wake the first worker
        # with its gate open: its step returns and it writes the result under its old epoch.
        world.open_gate("hold:Z1")
        zombie.send_signal(signal.SIGCONT)
        await _until(ended(zombie.pid), 60, "the woken worker to end its delivery")
        steps_when_fenced = await store.steps("triage", "Z1")
        world.open_gate("hold_successor:Z1")

        async def completed() -> bool:
            rec = await store.get_event("triage", "Z1")
            return rec is not None and rec.state == EventState.COMPLETED

        await _until(completed, 60, "the successor to complete the event")
        await _until(ended(successor.pid), 30, "the successor to end its delivery")
        record = await store.get_event("triage", "Z1")
        assert record is not None
        facts = read_world(world_path)
        return ZombieResult(
            zombie_pid=zombie.pid,
            successor_pid=successor.pid,
            record=record,
            steps=await store.steps("triage", "Z1"),
            steps_when_fenced=steps_when_fenced,
            refunds=[r for r in facts["refunds"] if r["ticket_id"] == "Z1"],
            zombie_outcomes=[o["outcome"] for o in facts["outcomes"] if o["pid"] == zombie.pid],
            successor_outcomes=[
                o["outcome"] for o in facts["outcomes"] if o["pid"] == successor.pid
            ],
        )
    except AssertionError as exc:
        logs = {p.name: p.read_text()[-3000:] for p in sorted(setup.workdir.glob("*.log"))}
        raise AssertionError(f"{exc}\nworker logs: {logs}") from None
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        world.close()
        await transport.close()
        await store.close()
