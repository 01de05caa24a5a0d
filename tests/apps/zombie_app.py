"""The agent of the zombie test: each of the first two executions of a ticket holds mid-handler.

ZOMBIE_BROKER, ZOMBIE_STORE   broker and journal URLs
ZOMBIE_WORLD, ZOMBIE_CALLS    world file and simulator call log
ZOMBIE_LEASE_S, ZOMBIE_SESSION_S   claim lease and consumer session timeout
ZOMBIE_SOURCE, ZOMBIE_OUTPUT   topic names (the consumer group is named after the source)

The hold is a synchronous ``ctx.step`` (it runs in the worker's thread pool) that waits at a
gate the test opens: the first execution waits at ``hold``, the one that takes over at
``hold_successor``. The step's result is the pid of the process that ran it, so the journal
shows whose write stood.
"""

from __future__ import annotations

import asyncio
import os

from agentstream import App, Context, Retry, RuntimeConfig
from agentstream.demo.scenario import Ticket
from agentstream.demo.scenario import Triage as Decision
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig
from agentstream.middleware import Middleware, ProcessOutcome
from tests.chaos.world import World

env = os.environ.get
world = World(env("ZOMBIE_WORLD", "world.db"))


class RecordOutcomes(Middleware):
    """Writes how every delivery ended, with this process's pid, to the world file."""

    async def after_process(self, inp: ProcessOutcome) -> None:
        await asyncio.to_thread(world.outcome, inp.event.identity, inp.outcome)


app = App(
    "zombie",
    broker=env("ZOMBIE_BROKER"),
    store=env("ZOMBIE_STORE"),
    llm=lambda: SimulatedProvider(
        SimulatorConfig(latency_ms=5.0), call_log=env("ZOMBIE_CALLS", "calls.db")
    ),
    middleware=[RecordOutcomes()],
    config=RuntimeConfig(
        lease_s=float(env("ZOMBIE_LEASE_S", "2")),
        session_timeout_s=float(env("ZOMBIE_SESSION_S", "2")),
        heartbeat_s=0.3,
        commit_interval_s=0.1,
        shutdown_grace_s=2,
        # A woken worker loses its partitions; the grace lets its handler reach the journal
        # write the test is about instead of being cancelled first.
        revoke_grace_s=30,
        partitions=2,
    ),
)


@app.agent(
    source=env("ZOMBIE_SOURCE", "tickets"),
    key=lambda t: t.customer_id,
    identity=lambda t: t.ticket_id,
    output=env("ZOMBIE_OUTPUT", "decisions"),
    # One consumer group per run (named after its topic): a long-lived broker keeps the
    # members of an earlier run's group, killed ones included, for their session.
    group=f"zombie.{env('ZOMBIE_SOURCE', 'tickets')}",
    dead_letter="tickets.dlq",
    retry=Retry(attempts=10, backoff_initial=0.05, backoff_max=0.5),
)
async def triage(ctx: Context, ticket: Ticket) -> Decision:
    decision = await ctx.llm.parse(Decision, system="Triage.", user=ticket.text)
    await asyncio.to_thread(
        world.observe, ticket.ticket_id, ticket.customer_id, ticket.seq, decision.model_dump_json()
    )
    await ctx.step("hold", world.hold, ticket.ticket_id)
    await ctx.effect(
        "refund",
        world.refund,
        ticket.ticket_id,
        max(decision.refund_cents, 1),
        idempotency_key=ctx.key("refund"),
        reconcile=world.lookup_refund,
        timeout=5.0,
    )
    return decision
