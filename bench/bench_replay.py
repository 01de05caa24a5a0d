"""Recorded replay throughput over 20,000 journaled events.

    python -m bench.bench_replay [--events 20000] [--concurrency 32]

1. Journals N events by running them live through the executor against a SQLite journal, with
   the in-process LLM simulator at zero latency (a model call, a structured parse, an effect and
   a completion with one output per event). That live rate is the baseline.
2. Replays all N in recorded mode (same executor, journal reader, no model, no effect) and
   verifies every output byte for byte.

Prints events/s for both and the ratio, and checks that the replay made zero model calls
(counted at the simulator).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from agentstream import App, Context
from agentstream.event import Message
from agentstream.journal.sqlite import SqliteStore
from agentstream.llm.simulated import SimulatedProvider
from agentstream.llm.simulator import SimulatorConfig
from agentstream.middleware import MiddlewareStack
from agentstream.replay import replay_recorded
from agentstream.runtime.executor import Executor
from agentstream.runtime.intake import interpret


class Ticket(BaseModel):
    id: str
    customer: str
    text: str


class Triage(BaseModel):
    queue: str
    priority: int
    refund_cents: int


def notify(customer: str, queue: str, idempotency_key: str) -> str:
    return f"{customer}:{queue}"


def build_app(provider: SimulatedProvider) -> App:
    app = App("bench", llm=provider)

    @app.agent(source="tickets", key=lambda t: t.customer, identity=lambda t: t.id, output="out")
    async def triage(ctx: Context, ticket: Ticket) -> Triage:
        decision = await ctx.llm.parse(Triage, system="Triage the ticket.", user=ticket.text)
        await ctx.effect(
            "notify", notify, ticket.customer, decision.queue, idempotency_key=ctx.key("notify")
        )
        return decision

    return app


async def journal_live(app: App, store: SqliteStore, n: int, concurrency: int) -> float:
    spec = app.agents["triage"]
    executor = Executor(
        spec, store, app.provider(), MiddlewareStack(), owner="bench", group="bench.triage"
    )
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        ticket = Ticket(id=f"T{i:06d}", customer=f"c{i % 500}", text=f"ticket {i} needs help")
        msg = Message(
            "tickets", i % 8, i // 8, ticket.customer.encode(), ticket.model_dump_json().encode()
        )
        async with gate:
            await executor.process(interpret(spec, msg))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    provider = SimulatedProvider(SimulatorConfig(seed=1, latency_ms=0))
    app = build_app(provider)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        await store.open()
        try:
            live_s = await journal_live(app, store, args.events, args.concurrency)
            requests = provider.simulator.stats["requests"]
            report = await replay_recorded(app, "triage", store, concurrency=args.concurrency)
            assert provider.simulator.stats["requests"] == requests, "replay called the model"
        finally:
            await store.close()
    n = len(report.results)
    assert n == args.events and report.ok, (n, report.count("identical"))
    live_rate = args.events / live_s
    replay_rate = n / report.seconds
    print(f"events journaled live:      {args.events:>8,} in {live_s:6.2f}s {live_rate:>8,.0f}/s")
    print(f"recorded replay (verified): {n:>8,} in {report.seconds:6.2f}s {replay_rate:>8,.0f}/s")
    print(f"model calls during replay:  {report.model_calls} (simulator requests unchanged)")
    print(f"replay / live throughput:   {replay_rate / live_rate:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
