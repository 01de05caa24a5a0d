"""The agent under wait chaos: refunds, the big ones wait for an approval signal.

CHAOS_BROKER, CHAOS_STORE   broker and journal URLs
CHAOS_WORLD, CHAOS_CALLS    world file and simulator call log
CHAOS_KILL_PLAN             comma list of point:refund_id (after_llm, after_wait,
                            after_effect, after_complete) where the worker SIGKILLs itself
CHAOS_TIMEOUT_S             how long a refund waits for its approval before escalating
CHAOS_LEASE_S, CHAOS_PARTITIONS, CHAOS_SOURCE, CHAOS_OUTPUT
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel

from agentstream import App, Context, Retry, RuntimeConfig, WaitTimeout
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig
from agentstream.middleware import CompletedInput, Middleware, ProcessOutcome
from tests.chaos.world import World

env = os.environ.get
world = World(env("CHAOS_WORLD", "world.db"), env("CHAOS_KILL_PLAN", ""))


class Refund(BaseModel):
    id: str
    customer: str
    seq: int
    cents: int


class Approval(BaseModel):
    approved: bool


class Outcome(BaseModel):
    id: str
    branch: str
    summary: str


class KillAfterComplete(Middleware):
    """Dies after the journal has the completion and before the offset is acknowledged."""

    async def after_complete(self, inp: CompletedInput) -> None:
        world.maybe_kill("after_complete", inp.event.identity)


class RecordOutcomes(Middleware):
    """Writes how every delivery ended (and where it came from) to the world file."""

    async def after_process(self, inp: ProcessOutcome) -> None:
        source = "woken" if inp.event.woken else f"parked{inp.event.parked_id}"
        if inp.event.parked_id is None and not inp.event.woken:
            source = f"offset{inp.event.message.offset}"
        await asyncio.to_thread(world.outcome, inp.event.identity, f"{inp.outcome}:{source}")


app = App(
    "waitchaos",
    broker=env("CHAOS_BROKER"),
    store=env("CHAOS_STORE"),
    llm=lambda: SimulatedProvider(
        SimulatorConfig(latency_ms=float(env("CHAOS_LATENCY_MS", "10"))),
        call_log=env("CHAOS_CALLS", "calls.db"),
    ),
    middleware=[KillAfterComplete(), RecordOutcomes()],
    config=RuntimeConfig(
        lease_s=float(env("CHAOS_LEASE_S", "2")),
        session_timeout_s=float(env("CHAOS_SESSION_S", "2")),
        heartbeat_s=0.3,
        commit_interval_s=0.1,
        shutdown_grace_s=2,
        revoke_grace_s=1,
        park_sweep_s=0.2,
        wake_poll_s=0.1,
        partitions=int(env("CHAOS_PARTITIONS", "4")),
    ),
)


@app.agent(
    source=env("CHAOS_SOURCE", "refunds"),
    key=lambda r: r.customer,
    identity=lambda r: r.id,
    output=env("CHAOS_OUTPUT", "outcomes"),
    ordering="strict",
    concurrency=16,
    retry=Retry(attempts=25, backoff_initial=0.05, backoff_max=0.5),
)
async def refunds(ctx: Context, refund: Refund) -> Outcome:
    answer = await ctx.llm(system="Summarise the refund request.", user=f"{refund.id}")
    world.maybe_kill("after_llm", refund.id)
    branch = "auto"
    if refund.cents > 100_00:
        try:
            timeout = float(env("CHAOS_TIMEOUT_S", "4"))
            approval = await ctx.wait_for("approval", timeout=timeout, schema=Approval)
            branch = "approved" if approval.approved else "denied"
        except WaitTimeout:
            branch = "escalated"
        world.maybe_kill("after_wait", refund.id)
    await ctx.effect(
        "pay",
        world.effect,
        refund.id,
        f"{refund.customer}:{refund.seq}:{branch}",
        ctx.key("pay"),
        0.0,
        0.0,
        reconcile=world.lookup_effect,
    )
    world.maybe_kill("after_effect", refund.id)
    return Outcome(id=refund.id, branch=branch, summary=(answer.text or "")[:40])
