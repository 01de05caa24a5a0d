"""Apps the operations tests run: a support-triage agent with a bug that can be fixed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from typer.testing import CliRunner

from agentstream import App, Context, Middleware, ProviderUnavailable, Retry, RuntimeConfig
from agentstream.cli import cli
from agentstream.llm.simulator import CallLog, SimulatedProvider, SimulatorConfig

PROMPT = "You triage support tickets. Pick a queue and a refund in cents."


class Ticket(BaseModel):
    id: str
    customer: str
    text: str
    bug: bool = False


class Triage(BaseModel):
    queue: str
    refund_cents: int


FAST = RuntimeConfig(
    lease_s=5.0,
    poll_timeout_s=0.02,
    commit_interval_s=0.05,
    park_sweep_s=0.1,
    partitions=2,
    heartbeat_s=0.2,
    session_timeout_s=3.0,
    shutdown_grace_s=2.0,
)


def record(path: str, line: str, idempotency_key: str, refund_cents: int = 0) -> str:
    """The effect: append a line to a file (in processing order)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{line} {idempotency_key}\n")
    return line


def effects(path: Path) -> list[tuple[str, str]]:
    """The effect lines written so far: (ticket id, idempotency key)."""
    if not path.exists():
        return []
    return [tuple(ln.split()) for ln in path.read_text().splitlines()]  # type: ignore[misc]


def calls(path: Path, identity: str | None = None) -> list[dict[str, Any]]:
    """Simulated model calls, optionally only those of one event."""
    rows = CallLog.read(path)
    if identity is None:
        return rows
    return [r for r in rows if str(r["step_key"]).startswith(f"triage/{identity}/")]


def make_app(
    db_url: str,
    work: Path,
    *,
    fixed: bool,
    ordering: str = "key",
    identity_fn: bool = True,
    seed: int = 7,
    vip_prompt: str | None = None,
    name: str = "ops",
    middleware: Sequence[Middleware] = (),
    config: RuntimeConfig = FAST,
) -> App:
    """The triage app; until ``fixed``, tickets flagged ``bug`` crash the handler.

    ``vip_prompt`` replaces the system prompt for customers whose name starts with ``vip``
    (a candidate whose prompt changes some decisions). Tickets whose id starts with ``flaky``
    fail transiently on their first attempt, after the model call.
    """
    app = App(
        name,
        broker=db_url,
        store=db_url,
        llm=lambda: SimulatedProvider(
            SimulatorConfig(seed=seed, latency_ms=0), call_log=work / "calls.db"
        ),
        config=config,
        middleware=middleware,
    )
    effect_log = str(work / "effects.log")

    @app.agent(
        source="tickets",
        key=lambda t: t.customer,
        identity=(lambda t: t.id) if identity_fn else None,
        output="triage",
        dead_letter="tickets.dlq",
        ordering=ordering,
        retry=Retry(attempts=2, backoff_initial=0.01),
    )
    async def triage(ctx: Context, ticket: Ticket) -> Triage:
        vip = vip_prompt is not None and ticket.customer.startswith("vip")
        system = vip_prompt if vip else PROMPT
        decision = await ctx.llm.parse(Triage, system=system, user=ticket.text)
        if ticket.id.startswith("flaky") and ctx.attempt == 1:
            raise ProviderUnavailable("simulated outage")
        await ctx.effect(
            "record",
            record,
            effect_log,
            ticket.id,
            idempotency_key=ctx.key("record"),
            refund_cents=decision.refund_cents,
        )
        if ticket.bug and not fixed:
            raise ValueError(f"bug: cannot handle ticket {ticket.id}")
        return decision

    return app


def tickets(*specs: tuple[str, str, bool]) -> list[Ticket]:
    """Tickets from (id, customer, bug) triples."""
    return [Ticket(id=i, customer=c, text=f"ticket {i} from {c}", bug=b) for i, c, b in specs]


async def cli_run(*args: str) -> str:
    """Run the real CLI (in a thread: it runs its own event loop); fail on a non-zero exit."""
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


async def wait_for(predicate: Any, timeout_s: float = 30.0) -> None:
    """Poll a sync or async predicate until it is true."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)
