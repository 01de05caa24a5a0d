"""Runtime overhead on the embedded defaults, and model calls saved on a duplicated stream.

    python -m bench.bench_core [--events 20000] [--keys 200] [--partitions 8]

0. The journal's own limit: ``Store.claim_many`` + ``complete_many`` in batches of 500 on a
   fresh SQLite journal (see :mod:`bench.journal_limit`); the runtime's rate is also printed as
   a fraction of it.
1. Baseline: a bare loop over the same embedded log (SQLite file), with no journal: poll, decode
   the JSON payload, call a no-op handler, acknowledge, commit the watermark every 200 ms.
2. agentstream: the full runtime with a no-op agent: per-key scheduling, an atomic claim with a
   lease and a completion record in the journal for every event, watermark commits.
3. A stream with 30% producer duplicates and a simulated model: model calls made by agentstream
   versus deliveries (what a consumer without a journal would call).

Each measurement uses a fresh file; ratios are measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentstream import App, Context, RuntimeConfig
from agentstream.event import OutgoingRecord
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig
from agentstream.testing import AppHarness
from agentstream.transports.base import IgnoreRebalance
from agentstream.transports.embedded import EmbeddedTransport
from bench import workload
from bench.journal_limit import journal_limit
from bench.results import emit

CONFIG = RuntimeConfig(poll_batch=1000, max_buffered=5000, commit_interval_s=0.2)


async def produce(path: Path, records: list[OutgoingRecord], partitions: int) -> None:
    t = EmbeddedTransport(path, partitions=partitions)
    await t.start()
    await t.create_topic("events", partitions)
    for i in range(0, len(records), 5000):
        await t.produce(records[i : i + 5000])
    await t.close()


async def bare_loop(path: Path, n: int) -> float:
    """Events/s of a journal-less consume loop over the embedded log."""
    t = EmbeddedTransport(path)
    await t.start()
    await t.subscribe(["events"], "bare", IgnoreRebalance())
    started = time.perf_counter()
    seen = 0
    next_commit = started + 0.2
    while seen < n:
        for m in await t.poll(1000, 0.1):
            json.loads(m.value)  # decode, as the runtime does
            seen += 1
            t.ack(m)
        if time.perf_counter() >= next_commit:
            await t.commit()
            next_commit = time.perf_counter() + 0.2
    await t.commit()
    elapsed = time.perf_counter() - started
    await t.close()
    return n / elapsed


def noop_app(url: str, llm: Any = None) -> App:
    app = App("bench", broker=url, config=CONFIG, llm=llm)

    @app.agent(source="events", key=lambda p: p["key"], concurrency=64)
    async def noop(ctx: Context, payload: dict[str, Any]) -> None:
        return None

    return app


async def agentstream_noop(path: Path, n: int) -> float:
    """Events/s of the full runtime with a no-op agent and full journaling."""
    app = noop_app(f"sqlite:///{path}")
    started = time.perf_counter()
    async with AppHarness(app) as h:
        await h.wait_drained(timeout_s=600)
        elapsed = time.perf_counter() - started
    return n / elapsed


async def calls_saved(path: Path, n: int, keys: int, partitions: int) -> tuple[int, int]:
    """Deliveries and model calls on a stream with 30% duplicates."""
    records = workload.records("events", n, keys, seed=2, duplicate_ratio=0.3)
    await produce(path, records, partitions)
    provider = SimulatedProvider(SimulatorConfig(latency_ms=0))
    app = App("saved", broker=f"sqlite:///{path}", config=CONFIG, llm=provider)

    @app.agent(source="events", key=lambda p: p["key"], concurrency=64)
    async def decide(ctx: Context, payload: dict[str, Any]) -> str:
        return (await ctx.llm(user=payload["text"])).text or ""

    async with AppHarness(app) as h:
        await h.wait_drained(timeout_s=600)
    return len(records), provider.simulator.stats["requests"]


async def main(events: int, keys: int, partitions: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        records = workload.records("events", events, keys)
        await produce(base / "bare.db", records, partitions)
        bare = await bare_loop(base / "bare.db", events)
        await produce(base / "journaled.db", records, partitions)
        # Interpretation (decode, identity, key) is part of both paths' cost; the bare loop's
        # decode above is the same json.loads the runtime's intake does.
        journaled = await agentstream_noop(base / "journaled.db", events)
        limit = await journal_limit(f"sqlite:///{base / 'limit.db'}", events, keys=keys)
        deliveries, calls = await calls_saved(base / "saved.db", events // 4, keys, partitions)
    ratio = journaled / bare
    print(f"events: {events}, keys: {keys}, partitions: {partitions}")
    print(f"(a) bare loop over the embedded log, no journal : {bare:10.0f} events/s")
    print(f"(b) agentstream no-op agent, full journaling     : {journaled:10.0f} events/s")
    print(f"    ratio b/a                                    : {ratio:10.2f}  (aim >= 0.5)")
    print(f"(j) the journal's own limit (claim+complete x500): {limit:10.0f} events/s")
    print(f"    ratio b/j                                    : {journaled / limit:10.2f}", end="")
    print("  (aim >= 0.7)")
    print(
        f"(c) 30% duplicates: {deliveries} deliveries, {calls} model calls, "
        f"{deliveries - calls} saved ({(deliveries - calls) / deliveries:.1%})"
    )
    results = {
        "noop_embedded_events_per_s": journaled,
        "bare_loop_embedded_events_per_s": bare,
        "journal_limit_embedded_events_per_s": limit,
        "noop_over_bare_embedded": ratio,
        "noop_over_journal_limit_embedded": journaled / limit,
        "duplicate_model_calls_saved": deliveries - calls,
    }
    emit(results)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    sys.setswitchinterval(0.001)  # as `agentstream run` does for its worker processes
    asyncio.run(main(args.events, args.keys, args.partitions))
