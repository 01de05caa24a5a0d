"""Ten thousand waiting events cost journal rows, not memory or tasks; a signal still wakes one
within a second on the embedded defaults."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

from agentstream import App, Context
from agentstream.journal.records import EventState
from agentstream.testing import AppHarness
from tests.ops.apps import wait_for

N = 10_000


def rss_mb() -> float:
    """This process's resident memory, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def waiting_app(url: str) -> App:
    app = App("many", broker=url, store=url)

    @app.agent(source="holds", identity=lambda h: h["id"], key=lambda h: h["id"], concurrency=64)
    async def holds(ctx: Context, hold: dict) -> dict:
        answer = await ctx.wait_for("release", timeout=24 * 3600)
        return {"id": hold["id"], "released_by": answer["by"]}

    return app


async def test_ten_thousand_waiting_events_hold_no_memory_and_one_wakes_within_a_second(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    app = waiting_app(url)
    async with AppHarness(app) as h:
        gc.collect()
        before = rss_mb()
        # Given 10,000 events that each wait for a signal
        await h.produce("holds", ({"id": f"h{i:05d}"} for i in range(N)))
        store = app.backends().store()
        await store.open()
        try:

            async def all_waiting() -> bool:
                return (await store.counts("holds"))["waiting"] == N

            await wait_for(all_waiting, timeout_s=240)
            await h.wait_drained()
            gc.collect()
            grown = rss_mb() - before
            # Then no task, claim or buffered event is left for them, and memory stays bounded
            [worker] = h.workers
            assert worker.scheduler.buffered == 0 and worker.executor.claims() == []
            tasks = len(asyncio.all_tasks())
            print(f"\n{N} waiting: RSS grew {grown:.1f} MiB, {tasks} asyncio tasks in the process")
            assert grown < 100, f"RSS grew {grown:.1f} MiB for {N} waiting events"
            assert tasks < 50
            # When one of them gets its signal
            started = time.monotonic()
            await app.signal("holds", "h04242", "release", {"by": "ops"})

            async def released() -> bool:
                record = await store.get_event("holds", "h04242")
                return record is not None and record.state == EventState.COMPLETED

            await wait_for(released, timeout_s=10)
            took = time.monotonic() - started
        finally:
            await store.close()
        print(f"signal to completion: {took * 1000:.0f} ms")
        # Then it resumes and completes within a second
        assert took < 1.0
