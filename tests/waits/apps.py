"""The refund app the wait tests run: refunds above a threshold wait for an approval signal."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from agentstream import App, Context, RuntimeConfig, WaitTimeout
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig

THRESHOLD = 100_00


class Refund(BaseModel):
    id: str
    customer: str
    cents: int
    nap_s: float = 0.0


class Approval(BaseModel):
    approved: bool
    by: str = "ops"


class Outcome(BaseModel):
    id: str
    branch: str


FAST = RuntimeConfig(
    lease_s=5.0,
    poll_timeout_s=0.02,
    commit_interval_s=0.05,
    park_sweep_s=0.1,
    wake_poll_s=0.05,
    partitions=2,
    heartbeat_s=0.2,
    session_timeout_s=3.0,
    shutdown_grace_s=2.0,
)


def pay(path: str, refund_id: str, branch: str, idempotency_key: str) -> str:
    """The effect: append a line to a file, in the order refunds are paid out."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{refund_id} {branch} {idempotency_key}\n")
    return branch


def paid(path: Path) -> list[tuple[str, str]]:
    """The effect lines written so far: (refund id, branch)."""
    if not path.exists():
        return []
    return [(ln.split()[0], ln.split()[1]) for ln in path.read_text().splitlines()]


def make_app(
    db_url: str,
    work: Path,
    *,
    timeout_s: float = 60.0,
    ordering: str = "strict",
    hold_key: bool = True,
    store: str | None = None,
    config: RuntimeConfig = FAST,
) -> App:
    """Refunds: a model call, then a wait for approval above the threshold, then the payout."""
    app = App(
        "refunds",
        broker=db_url,
        store=store or db_url,
        llm=lambda: SimulatedProvider(
            SimulatorConfig(seed=3, latency_ms=0), call_log=work / "calls.db"
        ),
        config=config,
    )
    log = str(work / "paid.log")

    @app.agent(
        source="refunds",
        key=lambda r: r.customer,
        identity=lambda r: r.id,
        output="refund-outcomes",
        ordering=ordering,
        hold_key_while_waiting=hold_key,
    )
    async def refunds(ctx: Context, refund: Refund) -> Outcome:
        await ctx.llm(system="Summarise the refund request.", user=f"{refund.id} {refund.cents}")
        if refund.nap_s:
            await ctx.sleep(refund.nap_s)
        branch = "auto"
        if refund.cents > THRESHOLD:
            try:
                approval = await ctx.wait_for("approval", timeout=timeout_s, schema=Approval)
                branch = "approved" if approval.approved else "denied"
            except WaitTimeout:
                branch = "escalated"
        await ctx.effect("pay", pay, log, refund.id, branch, idempotency_key=ctx.key("pay"))
        return Outcome(id=refund.id, branch=branch)

    return app
