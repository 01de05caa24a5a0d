"""Refunds above a threshold wait for a person's approval; after 24 hours they escalate.

Run it on the embedded defaults (one SQLite file, no server) with the simulated model::

    agentstream produce refund-requests examples/refund_requests.jsonl --key customer_id \\
        --id request_id
    agentstream run examples.refund_approval:app          # leave it running
    agentstream status examples.refund_approval:app       # R-2 waits for "approval"
    agentstream signal examples.refund_approval:app refunds R-2 approval \\
        --data '{"approved": true, "by": "ann"}'

The model drafts a note for each request. A refund at or below $100 is paid at once. A larger
one waits for the ``approval`` signal: while it waits it holds no worker, no lease and no
offset (the journal keeps it), and later requests of the same customer wait behind it
(``ordering="strict"``) while other customers go on. An approval pays the refund, a denial
closes it, and no answer within 24 hours escalates it to a supervisor queue. Whatever the
workers do meanwhile (restarts, crashes, a second signal), the refund is paid at most once and
the model is not asked again.
"""

from __future__ import annotations

import sqlite3

from pydantic import BaseModel

from agentstream import App, Context, WaitTimeout
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig

THRESHOLD_CENTS = 100_00
APPROVAL_TIMEOUT_S = 24 * 3600


class RefundRequest(BaseModel):
    request_id: str
    customer_id: str
    cents: int
    reason: str


class Approval(BaseModel):
    approved: bool
    by: str


class Resolution(BaseModel):
    request_id: str
    status: str
    """``paid``, ``denied`` or ``escalated``."""
    note: str
    approved_by: str | None = None


class Payments:
    """Stands in for a payments API that takes an idempotency key."""

    def __init__(self, path: str = "refund_payments.db") -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS payouts "
            "(idem_key TEXT PRIMARY KEY, request TEXT, cents INT)"
        )

    def pay(self, request_id: str, cents: int, idempotency_key: str) -> dict[str, str]:
        self.conn.execute(
            "INSERT OR IGNORE INTO payouts VALUES (?, ?, ?)", (idempotency_key, request_id, cents)
        )
        return {"payout": idempotency_key}


payments = Payments()
app = App("refund-approval", llm=lambda: SimulatedProvider(SimulatorConfig(latency_ms=50)))


@app.agent(
    source="refund-requests",
    key=lambda r: r.customer_id,
    identity=lambda r: r.request_id,
    output="refund-resolutions",
    ordering="strict",
)
async def refunds(ctx: Context, request: RefundRequest) -> Resolution:
    draft = await ctx.llm(
        system="Write a one-line note to the customer about their refund request.",
        user=f"{request.cents / 100:.2f} USD: {request.reason}",
    )
    note = draft.text or ""
    approved_by = None
    if request.cents > THRESHOLD_CENTS:
        try:
            approval = await ctx.wait_for("approval", timeout=APPROVAL_TIMEOUT_S, schema=Approval)
        except WaitTimeout:
            ctx.emit(request, topic="refund-escalations")
            return Resolution(request_id=request.request_id, status="escalated", note=note)
        if not approval.approved:
            return Resolution(request_id=request.request_id, status="denied", note=note)
        approved_by = approval.by
    await ctx.effect(
        "pay",
        payments.pay,
        request.request_id,
        request.cents,
        idempotency_key=ctx.key("pay"),
    )
    return Resolution(
        request_id=request.request_id, status="paid", note=note, approved_by=approved_by
    )
