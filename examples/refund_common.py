"""The refund scenario shared by the SDK and framework examples (refund_*_sdk.py, ...).

A support ticket arrives; the agent may look the order up and may refund it. The payments API is
a SQLite table that records every refund it is asked for, with the idempotency key it was given
(a real one would deduplicate on that key). The model is the agentstream LLM simulator served
over HTTP, unless ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` point at a real endpoint.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from typing import Any

from pydantic import BaseModel

import agentstream
from agentstream.llm.simulator import SimulatorConfig, SimulatorServer

INSTRUCTIONS = "You handle refund requests. Look the order up, refund it when it is late."
TICKETS = [
    {"ticket_id": "T1", "customer_id": "c1", "text": "Order 1001 is two weeks late, refund me."},
    {"ticket_id": "T2", "customer_id": "c2", "text": "Where is order 1002?"},
    {"ticket_id": "T3", "customer_id": "c1", "text": "I was charged twice for order 1003."},
]


class Ticket(BaseModel):
    ticket_id: str
    customer_id: str
    text: str


class Payments:
    """The payments API: every refund request is a row, keyed by its idempotency key."""

    def __init__(self, path: str = "refund_payments.db") -> None:
        self._lock = threading.Lock()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS refunds (id INTEGER PRIMARY KEY, idem_key TEXT, "
            "order_id TEXT, cents INTEGER)"
        )

    def refund(self, order_id: str, cents: int, idempotency_key: str) -> dict[str, Any]:
        with self._lock:
            cur = self.conn.execute(
                "INSERT INTO refunds (idem_key, order_id, cents) VALUES (?, ?, ?)",
                (idempotency_key, order_id, cents),
            )
        return {"refund_id": cur.lastrowid, "order_id": order_id, "cents": cents}

    def lookup(self, idempotency_key: str) -> dict[str, Any] | None:
        """Reconcile: the refund already made under this key, if any."""
        with self._lock:
            row = self.conn.execute(
                "SELECT id, order_id, cents FROM refunds WHERE idem_key = ?", (idempotency_key,)
            ).fetchone()
        return None if row is None else {"refund_id": row[0], "order_id": row[1], "cents": row[2]}

    def count(self) -> int:
        with self._lock:
            return int(self.conn.execute("SELECT COUNT(*) FROM refunds").fetchone()[0])


payments = Payments(os.environ.get("REFUND_PAYMENTS", "refund_payments.db"))


@agentstream.effect(reconcile=payments.lookup)
async def refund(order_id: str, cents: int) -> dict[str, Any]:
    """Refund an order (cents between 1 and 5000)."""
    key = agentstream.idempotency_key()
    return await asyncio.to_thread(payments.refund, order_id, cents, key)


@agentstream.step
async def order_status(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id} is 14 days late"


_simulators: list[SimulatorServer] = []  # started on first use, one per process


def model_url(env: str, *, anthropic: bool = False) -> str:
    """The model endpoint: ``$env`` if set, else a simulator started on a free port."""
    if os.environ.get(env):
        return os.environ[env]
    if not _simulators:
        config = SimulatorConfig(latency_ms=30, tool_call_rate=1.0)
        _simulators.append(SimulatorServer(config).start())
    return _simulators[0].anthropic_url if anthropic else _simulators[0].url


def requests_sent() -> int:
    """Model requests the simulator answered (0 with a real endpoint)."""
    return sum(len(s.accepted()) for s in _simulators)


async def demo(app: agentstream.App) -> None:
    """Handle the tickets, then deliver them again: the second time nothing is sent or paid."""
    from agentstream.testing import run_agent

    for ticket in TICKETS:
        first = await run_agent(app, "refunds", ticket)
        sent, paid = requests_sent(), payments.count()
        again = await run_agent(app, "refunds", ticket, offset=1)
        print(f"{ticket['ticket_id']}: {first.outcome}, {len(first.steps)} journaled steps:")
        print("   ", json.dumps(first.result))
        print(
            f"    redelivered: {again.outcome}, same answer {again.result == first.result}, "
            f"new model requests {requests_sent() - sent}, new refunds {payments.count() - paid}"
        )
