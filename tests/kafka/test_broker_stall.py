"""A broker stall heals itself: every output is published after the broker is back.

A dedicated Tansu broker is SIGSTOPped for 30 s while two ``agentstream run`` worker processes
have events in flight and outputs in the outbox, then resumed. Without a restart of any worker,
every outbox row must be published within a bounded time, and the outputs of each key must
reach the topic in the order of its events.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
import uuid
from pathlib import Path

from agentstream.backends import Backends
from agentstream.codec import encode_value
from agentstream.event import OutgoingRecord
from tests.conformance.conftest import KAFKA_TEST_SETTINGS
from tests.kafka.conftest import read_topic
from tests.services import start_logged, stop_processes, tansu_process

ROOT = Path(__file__).resolve().parents[2]
EVENTS, KEYS, WORKERS = 400, 20, 2
STALL_S = 30.0
HEAL_WITHIN_S = 90.0


def published(db: Path) -> tuple[int, int]:
    """Outbox rows published and in all."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        row = conn.execute(
            "SELECT count(*), sum(published_at IS NOT NULL) FROM as_outbox"
        ).fetchone()
        return int(row[1] or 0), int(row[0] or 0)
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        conn.close()


async def produce(url: str, name: str) -> None:
    transport = Backends(url, url).transport()
    await transport.start()
    await transport.produce(
        [
            OutgoingRecord(
                f"{name}-in",
                f"k{i % KEYS}".encode(),
                encode_value({"id": f"e{i}", "key": f"k{i % KEYS}", "n": i}),
            )
            for i in range(EVENTS)
        ]
    )
    await transport.close()


async def test_outputs_are_published_after_a_30s_broker_stall_without_restarting_workers(
    tmp_path: Path,
) -> None:
    name = f"s{uuid.uuid4().hex[:8]}"
    db = tmp_path / "journal.db"
    with tansu_process() as (bootstrap, tansu):
        url = f"kafka://{bootstrap}?{KAFKA_TEST_SETTINGS}"
        env = {**os.environ, "STALL_NAME": name}
        cmd = [sys.executable, "-m", "agentstream", "run", "tests.apps.stall_app:app"]
        cmd += ["--broker", url, "--store", f"sqlite:///{db}", "--log-level", "INFO"]
        procs = [
            await start_logged(cmd, tmp_path / f"worker-{i}.log", env=env, cwd=ROOT)
            for i in range(WORKERS)
        ]
        try:
            await produce(url, name)
            deadline = time.monotonic() + 120
            while published(db)[0] < 40:
                assert time.monotonic() < deadline, "nothing was published before the stall"
                assert all(p.returncode is None for p in procs), "a worker died"
                await asyncio.sleep(0.1)
            tansu.send_signal(signal.SIGSTOP)
            await asyncio.sleep(STALL_S)
            tansu.send_signal(signal.SIGCONT)
            resumed = time.monotonic()
            while published(db) != (EVENTS, EVENTS):
                waited = time.monotonic() - resumed
                assert waited < HEAL_WITHIN_S, (
                    f"{published(db)} (published, rows) {waited:.0f}s after the broker came back"
                )
                assert all(p.returncode is None for p in procs), "a worker died"
                await asyncio.sleep(0.5)
            healed_s = time.monotonic() - resumed
            print(f"every output published {healed_s:.1f}s after the broker came back")
        finally:
            await stop_processes(procs)
        records = read_topic(bootstrap, f"{name}-out", EVENTS, timeout_s=60)
    seen: dict[str, list[int]] = {}
    for m in records:
        out = json.loads(m.value)
        order = seen.setdefault(out["key"], [])
        if out["n"] not in order:  # a republished row repeats, with the same output id
            order.append(out["n"])
    assert sum(len(v) for v in seen.values()) == EVENTS
    for key, order in seen.items():
        assert order == sorted(order), f"outputs of {key} out of order: {order}"


async def test_a_worker_whose_outputs_cannot_leave_exits_non_zero_for_its_supervisor(
    tmp_path: Path,
) -> None:
    name = f"s{uuid.uuid4().hex[:8]}"
    db = tmp_path / "journal.db"
    with tansu_process() as (bootstrap, tansu):
        url = f"kafka://{bootstrap}?{KAFKA_TEST_SETTINGS}"
        env = {
            **os.environ,
            "STALL_NAME": name,
            "STALL_PUBLISH_UNHEALTHY_S": "3",
            "STALL_PUBLISH_EXIT_S": "8",
        }
        cmd = [sys.executable, "-m", "agentstream", "run", "tests.apps.stall_app:app"]
        cmd += ["--broker", url, "--store", f"sqlite:///{db}", "--log-level", "INFO"]
        log = tmp_path / "worker.log"
        proc = await start_logged(cmd, log, env=env, cwd=ROOT)
        try:
            await produce(url, name)
            deadline = time.monotonic() + 120
            while published(db)[0] < 10:
                assert time.monotonic() < deadline, "nothing was published"
                assert proc.returncode is None, "the worker died early"
                await asyncio.sleep(0.1)
            tansu.send_signal(signal.SIGSTOP)  # for good: outputs can never leave
            stopped = time.monotonic()
            code = await asyncio.wait_for(proc.wait(), 90)
            took = time.monotonic() - stopped
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = log.read_text(errors="replace")
    assert code == 3, text[-3000:]
    assert "the worker reports unhealthy" in text
    assert "no output could be published" in text
    print(f"worker exited {code} {took:.1f}s after the broker stopped")
