"""A full disk under the SQLite journal costs a few log lines, not answers bought twice.

Two ``agentstream run`` workers, the simulator as its own process, the journal on a small
tmpfs that the test fills up (``database or disk is full``) for about 15 s while events are in
flight, then frees. Needs root to mount the tmpfs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.llm.test_provider_outage import (
    EVENTS,
    ROOT,
    WORKERS,
    Run,
    Simulator,
    check_exactly_once,
    free_port,
    produce,
    wait_for,
)
from tests.services import start_logged, stop_processes, unavailable

FULL_S = 15.0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem is full."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(chunk)
            f.flush()
    return filler


async def test_a_full_disk_under_the_journal_is_ridden_out_without_buying_answers_twice(
    tmp_path: Path, small_disk: Path
) -> None:
    sim = Simulator(free_port(), "sim-1", tmp_path / "calls.db")
    sim.start()
    try:
        env = {
            **os.environ,
            "AGENTSTREAM_BROKER": f"sqlite:///{tmp_path / 'broker.db'}",
            "AGENTSTREAM_STORE": f"sqlite:///{small_disk / 'journal.db'}",
            "OUTAGE_SIM_URL": sim.url,
            "OUTAGE_EFFECTS": str(tmp_path / "effects.db"),
        }
        run = Run(small_disk / "journal.db", tmp_path / "effects.db")
        await produce(env["AGENTSTREAM_BROKER"])
        cmd = [sys.executable, "-m", "agentstream", "run", "tests.apps.outage_app:app"]
        cmd += ["--log-level", "WARNING"]
        run.logs = [tmp_path / f"worker-{i}.log" for i in range(WORKERS)]
        procs = [await start_logged(cmd, path, env=env, cwd=ROOT) for path in run.logs]
        try:
            await wait_for(lambda: run.completed() >= 30, 90, "the first completions", procs)
            filler = await asyncio.to_thread(fill, small_disk)
            full_at = time.monotonic()
            await asyncio.sleep(FULL_S)
            stuck = run.completed()
            filler.unlink()
            await wait_for(lambda: run.completed() >= EVENTS, 120, "every completion", procs)
            print(
                f"completed {stuck} before the disk was freed ({time.monotonic() - full_at:.0f}s)"
            )
        finally:
            await stop_processes(procs)
    finally:
        sim.kill()
    check_exactly_once(run, one_claim_each=False)
    conn = sqlite3.connect(tmp_path / "calls.db")
    bought = conn.execute(
        "SELECT step_key, count(*) FROM sim_calls WHERE status = 200 GROUP BY step_key"
    ).fetchall()
    conn.close()
    twice = [k for k, n in bought if n > 1]
    assert len(bought) == EVENTS and not twice, f"{len(twice)} answers bought twice"
    text = run.log_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert "unavailable" in text, "the disk never filled up: the test proved nothing"
    assert "Traceback" not in text, text[-4000:]
    assert len(lines) <= 12 * WORKERS, "\n".join(lines[-60:])
    print(f"{len(lines)} log lines from {WORKERS} workers:\n" + "\n".join(lines))
