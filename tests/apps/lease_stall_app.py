"""The agent of the stall chaos test: synchronous steps and effects slower than the lease.

STALL_BROKER, STALL_STORE   broker and journal URLs
STALL_WORLD, STALL_CALLS    world file and simulator call log
STALL_LEASE_S               claim lease
STALL_SLOW_S                how long a slow step or effect sleeps or burns CPU

Per ticket number ``n``: the ``lookup`` step sleeps (n % 4 == 0) or burns CPU (n % 4 == 1);
the ``refund`` effect (when decided) sleeps first for n % 3 == 0; the ``notify`` effect
(always) burns CPU first for n % 5 == 0. Both effects are plain synchronous functions that
write a row to the world's ``effects`` table, which has no unique constraint.
Only public API is used (the effect's default timeout), so the same app runs on older code.
"""

from __future__ import annotations

import asyncio
import os
import time

from agentstream import App, Context, Retry, RuntimeConfig
from agentstream.demo.scenario import Ticket
from agentstream.demo.scenario import Triage as Decision
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig
from tests.chaos.world import World, burn

env = os.environ.get
world = World(env("STALL_WORLD", "world.db"))
SLOW_S = float(env("STALL_SLOW_S", "2"))

app = App(
    "stalls",
    broker=env("STALL_BROKER"),
    store=env("STALL_STORE"),
    llm=lambda: SimulatedProvider(
        SimulatorConfig(latency_ms=60.0, latency_sigma=0.5),
        call_log=env("STALL_CALLS", "calls.db"),
    ),
    config=RuntimeConfig(
        lease_s=float(env("STALL_LEASE_S", "1.5")),
        session_timeout_s=3.0,
        heartbeat_s=0.3,
        commit_interval_s=0.1,
        shutdown_grace_s=2,
        revoke_grace_s=1,
        partitions=6,
    ),
)


def lookup(n: int) -> dict[str, float]:
    """A synchronous step: a slow database read or a CPU-heavy scoring, longer than the lease."""
    started = time.monotonic()
    if n % 4 == 0:
        time.sleep(SLOW_S)
    elif n % 4 == 1:
        burn(SLOW_S)
    return {"took_s": round(time.monotonic() - started, 1)}


@app.agent(
    source=env("STALL_SOURCE", "tickets"),
    key=lambda t: t.customer_id,
    identity=lambda t: t.ticket_id,
    output="decisions",
    dead_letter="tickets.dlq",
    concurrency=6,
    retry=Retry(attempts=50, backoff_initial=0.05, backoff_max=0.5),
)
async def triage(ctx: Context, ticket: Ticket) -> Decision:
    n = int(ticket.ticket_id[1:])
    decision = await ctx.llm.parse(Decision, system="Triage this ticket.", user=ticket.text)
    await asyncio.to_thread(
        world.observe, ticket.ticket_id, ticket.customer_id, ticket.seq, decision.model_dump_json()
    )
    await ctx.step("lookup", lookup, n)
    if decision.refund:
        await ctx.effect(
            "refund",
            world.effect,
            ticket.ticket_id,
            "refund",
            idempotency_key=ctx.key("refund"),
            sleep_s=SLOW_S if n % 3 == 0 else 0.0,
            burn_s=0.0,
            reconcile=world.lookup_effect,
        )
    await ctx.effect(
        "notify",
        world.effect,
        ticket.ticket_id,
        "notify",
        idempotency_key=ctx.key("notify"),
        sleep_s=0.0,
        burn_s=SLOW_S if n % 5 == 0 else 0.0,
        reconcile=world.lookup_effect,
    )
    return decision
