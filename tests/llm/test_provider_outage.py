"""A model-provider outage pauses consumption and costs no attempt, no dead letter.

Real processes and real HTTP: the LLM simulator runs as its own process
(``agentstream simulate-llm``), two worker processes (``agentstream run``) share one embedded
SQLite broker and journal, and the simulator is killed, or stopped with SIGSTOP, for a long
outage while events are in flight, then brought back on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentstream.backends import Backends
from agentstream.codec import encode_value
from agentstream.event import OutgoingRecord
from tests.services import start_logged, stop_processes

ROOT = Path(__file__).resolve().parents[2]
# CI runs 200 events through a 20 s outage; AGENTSTREAM_SOAK=1 runs 400 through 60 s.
SOAK = os.environ.get("AGENTSTREAM_SOAK") == "1"
EVENTS, KEYS, WORKERS = (400 if SOAK else 200), 40, 2
OUTAGE_S = 60.0 if SOAK else 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Simulator:
    """A simulator process on a fixed port (so it can come back where the workers look)."""

    port: int
    model: str
    calls: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "agentstream", "simulate-llm", "--port", str(self.port)]
        cmd += ["--model", self.model, "--latency-ms", "300", "--latency-sigma", "0.2"]
        cmd += ["--seed", "3", "--call-log", str(self.calls), "--log-level", "WARNING"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{self.port}/health"
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        return
            time.sleep(0.1)
        raise AssertionError("the simulator did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


@dataclass
class Run:
    """Journal, effects and worker logs of one outage run."""

    db: Path
    effects: Path
    logs: list[Path] = field(default_factory=list)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(self.db, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def count(self, sql: str) -> int:
        try:
            return int(self.query(sql)[0][0] or 0)  # type: ignore[call-overload]
        except sqlite3.OperationalError:  # the workers have not created the journal yet
            return 0

    def completed(self) -> int:
        return self.count("SELECT count(*) FROM as_events WHERE state = 'completed'")

    def claimed(self) -> int:
        return self.count("SELECT count(*) FROM as_events")

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs)


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[list[Simulator]]:
    started: list[Simulator] = []
    yield started
    for sim in started:
        sim.kill()


async def produce(db_url: str) -> None:
    transport = Backends(db_url, db_url).transport()
    await transport.start()
    await transport.produce(
        [
            OutgoingRecord(
                "work",
                f"customer-{i % KEYS}".encode(),
                encode_value({"id": f"job-{i}", "text": f"summarize ticket {i}"}),
            )
            for i in range(EVENTS)
        ]
    )
    await transport.close()


async def wait_for(cond, timeout: float, what: str, procs) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        assert all(p.returncode is None for p in procs), "a worker process died"
        await asyncio.sleep(0.2)


async def outage_run(
    tmp_path: Path, sims: list[Simulator], *, fault: str, fallback: bool
) -> tuple[Run, float, float]:
    """Run the workers through an outage of the primary simulator; return when it was down."""
    primary = Simulator(free_port(), "sim-1", tmp_path / "calls.db")
    primary.start()
    sims.append(primary)
    env = {
        **os.environ,
        "AGENTSTREAM_BROKER": f"sqlite:///{tmp_path / 'journal.db'}",
        "OUTAGE_SIM_URL": primary.url,
        "OUTAGE_EFFECTS": str(tmp_path / "effects.db"),
    }
    if fallback:
        backup = Simulator(free_port(), "sim-backup", tmp_path / "backup-calls.db")
        backup.start()
        sims.append(backup)
        env["OUTAGE_FALLBACK_URL"] = backup.url
    run = Run(tmp_path / "journal.db", tmp_path / "effects.db")
    await produce(env["AGENTSTREAM_BROKER"])
    cmd = [sys.executable, "-m", "agentstream", "run", "tests.apps.outage_app:app"]
    cmd += ["--log-level", "INFO"]
    run.logs = [tmp_path / f"worker-{i}.log" for i in range(WORKERS)]
    procs = [await start_logged(cmd, path, env=env, cwd=ROOT) for path in run.logs]
    try:
        await wait_for(lambda: run.completed() >= 30, 90, "the first completions", procs)
        assert primary.proc is not None
        down_at = time.time()
        if fault == "kill":
            primary.kill()
        else:
            primary.proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(5.0)
        claimed_early, completed_early = run.claimed(), run.completed()
        status = subprocess.run(
            [sys.executable, "-m", "agentstream", "status", "--store", env["AGENTSTREAM_BROKER"]],
            cwd=ROOT,
            env={**env, "COLUMNS": "250"},
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert "model circuit breakers" in status and "open" in status, status
        await asyncio.sleep(OUTAGE_S - 5.0)
        claimed_late, completed_late = run.claimed(), run.completed()
        if fault == "kill":
            primary.start()
        else:
            primary.proc.send_signal(signal.SIGCONT)
        up_at = time.time()
        if not fallback:
            # Consumption paused: no new event was claimed while the breaker was open, and
            # none completed (the provider was down and there is no fallback).
            assert claimed_late == claimed_early, (claimed_early, claimed_late)
            assert completed_late == completed_early, (completed_early, completed_late)
        await wait_for(lambda: run.completed() >= EVENTS, 120, "every completion", procs)
    finally:
        await stop_processes(procs)
    return run, down_at, up_at


def check_exactly_once(run: Run, *, one_claim_each: bool = True) -> None:
    """Every event completed once, its effect once, no failure recorded against any.

    ``one_claim_each``: and no attempt was spent on the outage (every event completed on its
    first claim). A journal outage may cost an event a second claim: a write that fails after
    the claim makes the worker run the event again from its journaled steps.
    """
    assert run.completed() == EVENTS
    assert run.count("SELECT count(*) FROM as_dead_letters") == 0
    if one_claim_each:
        again = run.query("SELECT event_id, attempts, state FROM as_events WHERE attempts > 1")
        assert not again, f"events claimed more than once: {again}\n{run.log_text()[-6000:]}"
    assert run.count("SELECT count(*) FROM as_failures") == 0
    conn = sqlite3.connect(run.effects)
    rows = conn.execute("SELECT event_id, count(*) FROM effects GROUP BY event_id").fetchall()
    conn.close()
    assert len(rows) == EVENTS and all(n == 1 for _, n in rows), "effects not exactly once"


@pytest.mark.parametrize("fault", ["kill", "sigstop"])
async def test_a_long_provider_outage_pauses_consumption_and_spends_no_attempt(
    tmp_path: Path, sims: list[Simulator], fault: str
) -> None:
    run, _, _ = await outage_run(tmp_path, sims, fault=fault, fallback=False)
    check_exactly_once(run)
    text = run.log_text()
    assert "breaker" in text and "open" in text, text[-3000:]
    assert "consumption paused: model breaker" in text, text[-3000:]
    assert "consumption resumed" in text
    assert "closed: the provider answers again" in text
    assert "Traceback" not in text, text[-3000:]


async def test_a_fallback_model_answers_during_the_outage_and_the_journal_says_so(
    tmp_path: Path, sims: list[Simulator]
) -> None:
    run, down_at, up_at = await outage_run(tmp_path, sims, fault="kill", fallback=True)
    check_exactly_once(run)
    metas = [json.loads(str(m)) for (m,) in run.query("SELECT meta FROM as_steps WHERE kind='llm'")]
    by_fallback = [m for m in metas if m.get("fallback_model") == "sim-backup"]
    assert by_fallback, "no event was answered by the fallback"
    assert all(m["model"] == "sim-backup" and m["requested_model"] == "sim-1" for m in by_fallback)
    assert len(by_fallback) >= 50, f"only {len(by_fallback)} answered by the fallback"
    finished = run.query(
        "SELECT finished_at, meta FROM as_steps WHERE kind = 'llm' ORDER BY finished_at"
    )
    during = [json.loads(str(m)) for at, m in finished if down_at + 3 < float(at) < up_at]  # type: ignore[arg-type]
    assert during and all(m.get("fallback_model") == "sim-backup" for m in during)
