"""Recorded replay throughput over 20,000 journaled events.

    python -m bench.bench_replay [--events 20000] [--concurrency 32]

1. Journals N events by running them live through the executor against a SQLite journal, with
   the in-process LLM simulator at zero latency (a model call, a structured parse, an effect and
   a completion with one output per event). That live rate is the baseline.
2. Replays all N in recorded mode (same executor, journal read in pages of 500 events with
   their steps and outputs in two queries, no claim, no lease, no model, no effect) and verifies
   every output byte for byte, in this process and then on ``--processes`` worker processes.

Prints events/s for both and the ratio, and checks that the replay made zero model calls
(counted at the simulator).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from pydantic import BaseModel

from agentstream import App, Context
from agentstream.event import Message
from agentstream.journal.sqlite import SqliteStore
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig
from agentstream.replay import replay_recorded, replay_recorded_parallel
from bench.live import run_live
from bench.results import emit


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


def tickets(n: int) -> list[Message]:
    """``n`` ticket events over 500 customers and 8 partitions."""
    out = []
    for i in range(n):
        ticket = Ticket(id=f"T{i:06d}", customer=f"c{i % 500}", text=f"ticket {i} needs help")
        value = ticket.model_dump_json().encode()
        out.append(Message("tickets", i % 8, i // 8, ticket.customer.encode(), value))
    return out


PROVIDER = SimulatedProvider(SimulatorConfig(seed=1, latency_ms=0))
app = build_app(PROVIDER)
"""Module level, so replay worker processes can import it (``bench.bench_replay:app``)."""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2, help="for the multi-process replay")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        store = SqliteStore(path)
        await store.open()
        try:
            live_s = await run_live(app, "triage", store, tickets(args.events), args.concurrency)
            requests = PROVIDER.simulator.stats["requests"]
            report = await replay_recorded(app, "triage", store, concurrency=args.concurrency)
            shared = await replay_recorded_parallel(
                "bench.bench_replay:app",
                "triage",
                f"sqlite:///{path}",
                processes=args.processes,
                concurrency=args.concurrency,
            )
            assert PROVIDER.simulator.stats["requests"] == requests, "replay called the model"
        finally:
            await store.close()
    for r in (report, shared):
        assert len(r.results) == args.events and r.ok, (len(r.results), r.count("identical"))
    n = args.events
    live_rate = n / live_s
    replay_rate = n / report.seconds
    shared_rate = n / shared.seconds
    p = args.processes
    print(f"events journaled live:      {n:>8,} in {live_s:6.2f}s {live_rate:>8,.0f}/s")
    print(f"recorded replay (verified): {n:>8,} in {report.seconds:6.2f}s {replay_rate:>8,.0f}/s")
    print(f"  on {p} processes:          {n:>8,} in {shared.seconds:6.2f}s {shared_rate:>8,.0f}/s")
    print(f"model calls during replay:  {report.model_calls + shared.model_calls} (simulator "
          "requests unchanged)")  # fmt: skip
    print(f"replay / live throughput:   {replay_rate / live_rate:.2f}x in one process, "
          f"{shared_rate / live_rate:.2f}x on {p}")  # fmt: skip
    emit(
        {
            "live_events_per_s": live_rate,
            "replay_events_per_s": replay_rate,
            "replay_over_live": replay_rate / live_rate,
            f"replay_{p}_processes_over_live": shared_rate / live_rate,
            "replay_model_calls": report.model_calls + shared.model_calls,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
