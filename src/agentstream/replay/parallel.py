"""Recorded replay on several processes: one selection dealt out round-robin.

Recorded replay of one event reads only that event's journal rows and writes nothing, so events
can be replayed anywhere, in any order: each process imports the app, opens its own read-only
use of the journal and replays its share (:attr:`Selection.shard`). The parent merges the
per-event results in the journal's oldest-first order. Processes are started with ``spawn``
(no inherited event loop, threads or connections).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from agentstream.app import App
from agentstream.backends import Backends
from agentstream.replay.runner import RecordedReport, RecordedResult, replay_recorded
from agentstream.replay.source import Selection


def import_app(ref: str) -> App:
    """The App at ``module:attribute``.

    Raises:
        ValueError: ``ref`` does not name an App.
    """
    module_name, _, attr = ref.partition(":")
    app = getattr(importlib.import_module(module_name), attr, None) if attr else None
    if not isinstance(app, App):
        raise ValueError(f"{ref!r} does not name an agentstream.App (MODULE:ATTRIBUTE)")
    return app


def _replay_share(
    app_ref: str, agent: str, store_url: str, selection: Selection, concurrency: int
) -> tuple[list[RecordedResult], int]:
    """One process's share (runs in the child)."""

    async def run() -> tuple[list[RecordedResult], int]:
        app = import_app(app_ref)
        store = Backends(app.broker_url, store_url, app.config).store()
        await store.open()
        try:
            report = await replay_recorded(app, agent, store, selection, concurrency=concurrency)
        finally:
            await store.close()
        return report.results, report.model_calls

    return asyncio.run(run())


async def replay_recorded_parallel(
    app_ref: str,
    agent: str,
    store_url: str,
    selection: Selection | None = None,
    *,
    processes: int = 2,
    concurrency: int = 32,
) -> RecordedReport:
    """:func:`~agentstream.replay.replay_recorded` over ``processes`` worker processes.

    Args:
        app_ref: The app as ``module:attribute`` (imported in every process).
        agent: The agent.
        store_url: The journal URL (only read).
        selection: Which events (default: every completed event).
        processes: Worker processes.
        concurrency: Events replayed at once in each process.
    """
    selection = selection or Selection()
    count = max(1, processes)
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(count, mp_context=get_context("spawn")) as pool:
        shares = await asyncio.gather(
            *(
                loop.run_in_executor(
                    pool,
                    _replay_share,
                    app_ref,
                    agent,
                    store_url,
                    dataclasses.replace(selection, shard=(i, count)),
                    concurrency,
                )
                for i in range(count)
            )
        )
    report = RecordedReport(agent=import_app(app_ref).select([agent])[0].name)
    # Share i holds events i, i + count, i + 2 * count... of the oldest-first order: interleave.
    longest = max((len(results) for results, _ in shares), default=0)
    for n in range(longest):
        for results, _ in shares:
            if n < len(results):
                report.results.append(results[n])
    report.model_calls = sum(calls for _, calls in shares)
    report.seconds = time.perf_counter() - started
    return report
