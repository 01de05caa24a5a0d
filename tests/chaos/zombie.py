"""The zombie scenario, backend-neutral: a worker frozen past its lease wakes up fenced.

Worker A takes a ticket, decides, and is SIGSTOPped before its refund. Worker B joins, the
partition moves to it once A's session times out, B claims the event after A's lease ran out
(a new fencing epoch), refunds and completes. Then A gets SIGCONT and carries on where it was:
its late writes carry the old epoch, so the journal rejects them and A's delivery ends as
``fenced``; the refund happened once, B's decision stands.
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
from agentstream.journal import EventRecord, EventState
from tests.chaos.world import read_world

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ZombieSetup:
    """Where the scenario runs."""

    broker: str
    store: str
    workdir: Path
    lease_s: float = 2.0
    session_s: float = 2.0
    hold_s: float = 4.0
    source: str = "tickets"
    extra_env: dict[str, str] | None = None


def _worker(setup: ZombieSetup, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ZOMBIE_BROKER": setup.broker,
        "ZOMBIE_STORE": setup.store,
        "ZOMBIE_WORLD": str(setup.workdir / "world.db"),
        "ZOMBIE_CALLS": str(setup.workdir / "calls.db"),
        "ZOMBIE_HOLD_S": str(setup.hold_s),
        "ZOMBIE_LEASE_S": str(setup.lease_s),
        "ZOMBIE_SESSION_S": str(setup.session_s),
        "ZOMBIE_SOURCE": setup.source,
        "ZOMBIE_OUTPUT": f"{setup.source}.decisions",
        "PYTHONPATH": str(REPO),
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
    ticket = {"ticket_id": "Z1", "customer_id": "c1", "seq": 1, "text": "charged twice, refund"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        zombie = _worker(setup, "zombie")
        procs.append(zombie)
        await transport.produce([OutgoingRecord(setup.source, b"c1", json.dumps(ticket).encode())])

        async def zombie_holds() -> bool:
            if not world_path.exists():
                return False
            marks = read_world(world_path)["kill_marks"]
            return any(m["point"] == "hold" and m["pid"] == zombie.pid for m in marks)

        await _until(zombie_holds, 60, "the first worker to reach its refund")
        zombie.send_signal(signal.SIGSTOP)
        successor = _worker(setup, "successor")
        procs.append(successor)

        async def completed() -> bool:
            rec = await store.get_event("triage", "Z1")
            return rec is not None and rec.state == EventState.COMPLETED

        await _until(completed, 120, "the successor to complete the event")
        zombie.send_signal(signal.SIGCONT)

        async def zombie_ended() -> bool:
            outcomes = read_world(world_path)["outcomes"]
            return any(o["pid"] == zombie.pid for o in outcomes)

        await _until(zombie_ended, 30, "the woken worker to end its delivery")
        await asyncio.sleep(1.0)  # room for anything else it might (wrongly) do
        record = await store.get_event("triage", "Z1")
        assert record is not None
        world = read_world(world_path)
        return ZombieResult(
            zombie_pid=zombie.pid,
            successor_pid=successor.pid,
            record=record,
            refunds=[r for r in world["refunds"] if r["ticket_id"] == "Z1"],
            zombie_outcomes=[o["outcome"] for o in world["outcomes"] if o["pid"] == zombie.pid],
            successor_outcomes=[
                o["outcome"] for o in world["outcomes"] if o["pid"] == successor.pid
            ],
        )
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
        await transport.close()
        await store.close()
