"""Fraud review with a tool-calling loop: every model turn and tool call journaled.

The agent asks the model, runs the tools it requests as journaled steps, feeds the results back,
and finally asks for a structured verdict. A redelivered payment replays the whole conversation
from the journal (no model call, no tool call) and gets the same verdict; a payment is put on
hold at most once, whatever happens to the worker.

    agentstream produce payments examples/payments.jsonl --key account_id --id payment_id
    agentstream run examples.fraud_review:app         # Ctrl-C once the progress line says 12 done
    agentstream tail verdicts --max 3                 # the verdicts, one per payment
    agentstream status examples.fraud_review:app
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentstream import App, Budget, Context
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig

SYSTEM = (
    "You review card payments for fraud. Use the tools to look at the account before deciding. "
    "Answer with approve, hold or decline, a risk score from 0 to 100 and a short reason."
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "account_history",
            "description": "Recent payments of an account.",
            "parameters": {
                "type": "object",
                "properties": {"account_id": {"type": "string"}},
                "required": ["account_id"],
            },
        },
    }
]


class Payment(BaseModel):
    payment_id: str
    account_id: str
    amount_cents: int
    merchant: str
    country: str


class Verdict(BaseModel):
    action: Literal["approve", "hold", "decline"]
    risk: int = Field(ge=0, le=100)
    reason: str = Field(max_length=200)


class Bank:
    """Stands in for the card platform: account history and payment holds."""

    def __init__(self, path: str = "bank.db") -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS holds (idem_key TEXT PRIMARY KEY, payment_id TEXT)"
        )

    def history(self, account_id: str) -> list[dict[str, Any]]:
        return [{"merchant": "grocer", "amount_cents": 4_250, "country": "NL"}]

    def hold(self, payment_id: str, idempotency_key: str) -> str:
        self.conn.execute(
            "INSERT OR IGNORE INTO holds VALUES (?, ?)", (idempotency_key, payment_id)
        )
        return idempotency_key

    def find_hold(self, idempotency_key: str) -> str | None:
        row = self.conn.execute(
            "SELECT idem_key FROM holds WHERE idem_key = ?", (idempotency_key,)
        ).fetchone()
        return None if row is None else str(row[0])


bank = Bank()
app = App("fraud", llm=SimulatedProvider(SimulatorConfig(latency_ms=100)))


@app.agent(
    source="payments",
    key=lambda p: p.account_id,
    identity=lambda p: p.payment_id,
    output="verdicts",
    dead_letter="payments.dlq",
    budget=Budget(max_llm_calls=8, max_cost_usd=0.05),
)
async def review(ctx: Context, payment: Payment) -> Verdict:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": payment.model_dump_json()},
    ]
    for _ in range(3):
        turn = await ctx.llm.complete(messages=messages, tools=TOOLS, name="investigate")
        if not turn.tool_calls:
            break
        messages.append(
            {
                "role": "assistant",
                "content": turn.text,
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in turn.tool_calls
                ],
            }
        )
        for call in turn.tool_calls:
            history = await ctx.step("account_history", bank.history, payment.account_id)
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(history)}
            )
    verdict = await ctx.llm.parse(Verdict, messages=messages, name="verdict")
    if verdict.action == "hold":
        await ctx.effect(
            "hold",
            bank.hold,
            payment.payment_id,
            idempotency_key=ctx.key("hold"),
            reconcile=bank.find_hold,
            # The claim is extended to cover this before the call; a worker taking over after
            # a crash waits this long before it reconciles (sync calls run in a thread).
            timeout=10.0,
        )
    return verdict
