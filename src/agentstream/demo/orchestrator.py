"""Orchestrates the demo: the same stream, the same killer, two consumers, one table."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentstream.backends import Backends
from agentstream.codec import encode_value
from agentstream.demo.scenario import Ledger, Ticket, make_stream
from agentstream.event import OutgoingRecord
from agentstream.journal.store import Store
from agentstream.llm.simulator.model import CallLog, SimulatorConfig
from agentstream.llm.simulator.server import SimulatorServer


@dataclass
class DemoSettings:
    """Knobs of ``agentstream demo``."""

    workdir: Path
    events: int = 300
    kills: int = 4
    latency_ms: float = 150.0
    duplicate_ratio: float = 0.15
    seed: int = 1
    llm_url: str | None = None
    model: str = "sim-1"


@dataclass
class ConsumerResult:
    """What one consumer did to the world."""

    name: str
    conflicting: int
    duplicate_effects: int
    refunds: int
    llm_calls: int
    lost: int
    dropped: int
    dead_letters: int
    kills: int
    seconds: float


async def _produce(url: str, stream: list[bytes | Ticket]) -> None:
    transport = Backends(url, url).transport()
    await transport.start()
    try:
        records = [
            OutgoingRecord(
                "tickets",
                item.customer_id.encode() if isinstance(item, Ticket) else b"unknown",
                encode_value(item),
            )
            for item in stream
        ]
        await transport.produce(records)
    finally:
        await transport.close()


def _thresholds(settings: DemoSettings, unique: int) -> list[int]:
    """Progress points (events decided) at which the worker is SIGKILLed."""
    step = unique / (settings.kills + 1)
    return [int(step * (k + 1)) for k in range(settings.kills)]


class _Killer:
    """Runs a consumer process, SIGKILLs it at progress thresholds and restarts it."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.cmd, self.env, self.log = cmd, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=out)

    def kill_and_restart(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def _drive(
    killer: _Killer,
    thresholds: list[int],
    progress_of: Callable[[], int],
    finished: Callable[[], bool],
    bar: tuple[Progress, TaskID],
    timeout_s: float = 300.0,
) -> None:
    progress, task = bar
    pending = list(thresholds)
    killer.start()
    started = time.monotonic()
    while not finished():
        done = progress_of()
        progress.update(task, completed=done, kills=killer.kills)
        if pending and done >= pending[0]:
            pending.pop(0)
            killer.kill_and_restart()
        elif killer.proc is not None and killer.proc.poll() is not None and not finished():
            killer.start()  # the naive consumer exits when it believes it is done
        if time.monotonic() - started > timeout_s:
            raise TimeoutError("the demo consumer did not finish in time")
        await asyncio.sleep(0.1)
    progress.update(task, completed=progress_of(), kills=killer.kills)


async def run_demo(settings: DemoSettings, console: Console) -> list[ConsumerResult]:
    """Run both consumers over the same stream and return what each did."""
    work = settings.workdir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    stream, duplicates = make_stream(
        settings.events, duplicate_ratio=settings.duplicate_ratio, seed=settings.seed
    )
    tickets = {t.ticket_id for t in stream if isinstance(t, Ticket)}
    poison = sum(1 for t in stream if not isinstance(t, Ticket))
    console.print(
        f"[bold]Stream:[/bold] {len(stream)} records = {len(tickets)} support tickets + "
        f"{duplicates} producer duplicates (same ticket id, new offset) + {poison} malformed "
        f"payloads; the simulated model answers at random; each consumer is SIGKILLed "
        f"{settings.kills} times mid-run and restarted.\n"
    )
    ledger_path = work / "ledger.db"
    ledger = Ledger(ledger_path)
    thresholds = _thresholds(settings, len(tickets))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    results: list[ConsumerResult] = []
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("kills {task.fields[kills]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        # 1. The naive consumer.
        naive_db = work / "naive.db"
        naive_calls = work / "naive-calls.db"
        await _produce(f"sqlite:///{naive_db}", stream)
        naive_llm = _model_endpoint(settings, naive_calls)
        bar = progress.add_task("naive consumer", total=len(tickets), kills=0)
        killer = _Killer(
            [
                sys.executable,
                "-m",
                "agentstream.demo.naive",
                str(naive_db),
                str(ledger_path),
                naive_llm.url,
                settings.model,
            ],
            env,
            work / "naive.log",
        )
        started = time.monotonic()
        with naive_llm:
            await _drive(
                killer,
                thresholds,
                lambda: ledger.decided("naive"),
                lambda: killer.proc is not None and killer.proc.poll() == 0,
                (progress, bar),
            )
        summary = ledger.summary("naive", tickets)
        results.append(
            ConsumerResult(
                "naive consumer",
                summary["conflicting"],
                summary["duplicate_effects"],
                summary["refunds"],
                naive_llm.calls(),
                summary["lost"],
                summary["dropped"],
                0,
                killer.kills,
                time.monotonic() - started,
            )
        )
        # 2. agentstream.
        url = f"sqlite:///{work / 'agentstream.db'}"
        calls = work / "agentstream-calls.db"
        await _produce(url, stream)
        llm = _model_endpoint(settings, calls)
        backends = Backends(url, url)
        store = backends.store()
        await store.open()
        journal = _JournalProgress(store)
        try:
            bar = progress.add_task("agentstream", total=len(tickets) + poison, kills=0)
            killer = _Killer(
                [
                    sys.executable,
                    "-m",
                    "agentstream",
                    "run",
                    "agentstream.demo.triage_app:app",
                    "--log-level",
                    "ERROR",
                ],
                {
                    **env,
                    "DEMO_DB": url,
                    "DEMO_LEDGER": str(ledger_path),
                    "DEMO_LLM_URL": llm.url,
                    "DEMO_MODEL": settings.model,
                },
                work / "agentstream.log",
            )
            started = time.monotonic()
            refresher = asyncio.create_task(journal.follow())
            llm.start()
            try:
                await _drive(
                    killer,
                    thresholds,
                    lambda: journal.done,
                    lambda: journal.done >= len(tickets) + poison and journal.outbox_pending == 0,
                    (progress, bar),
                )
                await asyncio.sleep(0.5)
            finally:
                refresher.cancel()
                killer.stop()
                llm.stop()
            counts = await store.counts("triage")
        finally:
            await store.close()
        summary = ledger.summary("agentstream", tickets)
        results.append(
            ConsumerResult(
                "agentstream",
                summary["conflicting"],
                summary["duplicate_effects"],
                summary["refunds"],
                llm.calls(),
                summary["lost"],
                summary["dropped"] + poison - counts["dead_letters"],
                counts["dead_letters"],
                killer.kills,
                time.monotonic() - started,
            )
        )
    return results


class _ModelEndpoint:
    """The model a consumer talks to: a simulator started here, or a real endpoint."""

    def __init__(self, url: str | None, server: SimulatorServer | None, calls: Path) -> None:
        self._url = url
        self._server = server
        self._calls = calls

    @property
    def url(self) -> str:
        if self._server is not None:
            self._server.start()
            return self._server.url
        assert self._url is not None
        return self._url

    def start(self) -> None:
        if self._server is not None:
            self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> _ModelEndpoint:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def calls(self) -> int:
        """Model calls made (counted by the simulator; -1 for a real endpoint)."""
        return len(CallLog.read(self._calls)) if self._server is not None else -1


def _model_endpoint(settings: DemoSettings, calls: Path) -> _ModelEndpoint:
    if settings.llm_url:
        return _ModelEndpoint(settings.llm_url, None, calls)
    server = SimulatorServer(
        SimulatorConfig(latency_ms=settings.latency_ms, latency_sigma=0.4), call_log=calls
    )
    return _ModelEndpoint(None, server, calls)


class _JournalProgress:
    """Follows the journal's counts for the progress bar."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.done = 0
        self.outbox_pending = 1

    async def follow(self) -> None:
        while True:
            counts = await self.store.counts("triage")
            self.done = counts["completed"] + counts["dead"]
            self.outbox_pending = counts["outbox_pending"]
            await asyncio.sleep(0.1)


def _cell(value: int) -> str:
    return "n/a" if value < 0 else str(value)


def render(results: list[ConsumerResult], settings: DemoSettings, console: Console) -> None:
    """Print the side-by-side table and what it means."""
    table = Table(title="At-least-once delivery + a stochastic model", show_lines=False)
    table.add_column("")
    for r in results:
        table.add_column(r.name, justify="right")
    rows = [
        ("tickets with conflicting decisions", "conflicting"),
        ("duplicate refunds paid", "duplicate_effects"),
        ("refunds paid in total", "refunds"),
        ("LLM calls made", "llm_calls"),
        ("tickets lost (never decided)", "lost"),
        ("malformed payloads dropped without trace", "dropped"),
        ("dead letters (kept, with original bytes)", "dead_letters"),
        ("SIGKILLs survived", "kills"),
    ]
    for label, attr in rows:
        table.add_row(label, *(_cell(getattr(r, attr)) for r in results))
    table.add_row("wall time", *(f"{r.seconds:.1f}s" for r in results))
    table.caption = (
        "model: the LLM simulator over HTTP (OpenAI wire format)"
        if not settings.llm_url
        else f"model: {settings.model} at {settings.llm_url}"
    )
    console.print()
    console.print(table)
    console.print(
        f"\nFiles are in {settings.workdir}. Inspect the journal with "
        f"[bold]agentstream status --store sqlite:///{settings.workdir / 'agentstream.db'}[/bold]."
    )
