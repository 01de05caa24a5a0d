"""The agent under chaos: support-ticket triage with a refund effect, configured by env vars.

CHAOS_BROKER, CHAOS_STORE   broker and journal URLs
CHAOS_WORLD, CHAOS_CALLS    world file and simulator call log
CHAOS_KILL_PLAN             comma list of point:ticket_id (before_llm, after_llm, after_effect,
                            after_complete) where the worker SIGKILLs itself, once each
CHAOS_LATENCY_MS            simulated model median latency
CHAOS_LEASE_S               claim lease
CHAOS_SOURCE, CHAOS_OUTPUT, CHAOS_DLQ   topic names
"""

from __future__ import annotations

import asyncio
import os

from agentstream import App, Context
from agentstream.demo.scenario import Ticket
from agentstream.demo.scenario import Triage as Decision
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig
from agentstream.middleware import CompletedInput, Middleware, RebalanceInput
from tests.apps.chaos_env import agent_options, runtime_config
from tests.chaos.world import World

env = os.environ.get


world = World(env("CHAOS_WORLD", "world.db"), env("CHAOS_KILL_PLAN", ""))


class KillAfterComplete(Middleware):
    """Dies after the journal has the completion and before the offset is acknowledged."""

    async def after_complete(self, inp: CompletedInput) -> None:
        world.maybe_kill("after_complete", inp.event.identity)


class CountRebalances(Middleware):
    """Writes every assignment and revocation to the world file."""

    async def on_rebalance(self, inp: RebalanceInput) -> None:
        await asyncio.to_thread(world.rebalance, inp.change, len(inp.partitions))


app = App(
    "chaos",
    broker=env("CHAOS_BROKER"),
    store=env("CHAOS_STORE"),
    llm=lambda: SimulatedProvider(
        SimulatorConfig(latency_ms=float(env("CHAOS_LATENCY_MS", "20")), latency_sigma=0.8),
        call_log=env("CHAOS_CALLS", "calls.db"),
    ),
    middleware=[KillAfterComplete(), CountRebalances()],
    config=runtime_config(),
)


@app.agent(**agent_options())
async def triage(ctx: Context, ticket: Ticket) -> Decision:
    world.maybe_kill("before_llm", ticket.ticket_id)
    decision = await ctx.llm.parse(
        Decision, system="Triage this support ticket.", user=ticket.text, temperature=0.0
    )
    world.maybe_kill("after_llm", ticket.ticket_id)
    await asyncio.to_thread(
        world.observe,
        ticket.ticket_id,
        ticket.customer_id,
        ticket.seq,
        decision.model_dump_json(),
    )
    if decision.refund:
        await ctx.effect(
            "refund",
            world.refund,
            ticket.ticket_id,
            decision.refund_cents,
            idempotency_key=ctx.key("refund"),
            reconcile=world.lookup_refund,
            timeout=3.0,  # a local insert; a crash mid-effect is taken over 3 s later
        )
    return decision
