"""One worker process of ``agentstream run``: banner, progress lines, signals, shutdown line.

The process logs what it runs on (agents, broker, journal, model) when its workers are built,
a progress line every ``progress_s`` seconds while there is something to say, one line when
SIGTERM or SIGINT asks it to stop (it then drains: running events get ``shutdown_grace_s``)
and one line when it has stopped. Either signal ends the process with exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence

from agentstream.app import App
from agentstream.runtime.progress import Progress
from agentstream.runtime.worker import AgentWorker

log = logging.getLogger("agentstream.run")

WORKER_ID_ENV = "AGENTSTREAM_WORKER_ID"


def worker_label() -> str:
    """``worker N`` when started by ``run --workers`` (``$AGENTSTREAM_WORKER_ID``), else ``""``."""
    worker_id = os.environ.get(WORKER_ID_ENV)
    return f"worker {worker_id}" if worker_id else ""


def banner(app: App, workers: Sequence[AgentWorker]) -> str:
    """What this process runs, on what: one line."""
    provider = app.provider()
    where = getattr(provider, "base_url", None)
    via = "no LLM provider" if provider is None else type(provider).__name__
    if where:
        via += f" at {where}"
    agents = ", ".join(
        f"{w.spec.name} ({w.spec.source} -> {w.spec.output or '-'}, model {w.spec.model})"
        for w in workers
    )
    return (
        f"app {app.name!r} started: agents {agents}; broker {app.broker_url}; "
        f"journal {app.store_url}; {via}"
    )


async def serve(app: App, agents: Sequence[str] | None, *, progress_s: float) -> None:
    """Run the app until SIGTERM or SIGINT, logging banner, progress and shutdown lines."""
    progress = Progress()
    app.middleware.add(progress)
    workers: list[AgentWorker] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if not stop.is_set():
            in_flight = sum(w.scheduler.buffered for w in workers)
            log.info(
                "%s: stopping; draining %d event(s) in flight (up to %g s)",
                sig.name,
                in_flight,
                app.config.shutdown_grace_s,
            )
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    def started(built: list[AgentWorker]) -> None:
        workers.extend(built)
        log.info("%s", banner(app, built))

    async def report() -> None:
        while True:
            await asyncio.sleep(progress_s)
            if progress.changed_since_last_line(workers):
                log.info("progress: %s", progress.line(workers))

    reporter = asyncio.create_task(report()) if progress_s > 0 else None
    try:
        await app.run(agents=agents, stop=stop, install_signal_handlers=False, on_started=started)
    finally:
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if workers:  # a start-up failure is reported on its own, in one line
            seconds = time.monotonic() - progress.started
            log.info("stopped after %.1f s: %s", seconds, progress.line(workers, overall=True))
