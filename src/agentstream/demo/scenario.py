"""The demo's world: support tickets, a payments ledger, and the model's answers.

The payments ledger stands for a downstream API: every call to ``refund`` moves money and is
counted, whether or not it repeats an earlier one, so duplicate effects are visible.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

PROMPT = (
    "You triage customer support tickets. Decide the category and priority, and whether the "
    "customer gets a refund (and how much, in cents)."
)


class Ticket(BaseModel):
    """A support ticket as it arrives on the ``tickets`` topic."""

    ticket_id: str
    customer_id: str
    seq: int
    text: str


class Triage(BaseModel):
    """The agent's decision for one ticket."""

    category: Literal["billing", "shipping", "account", "technical", "other"]
    priority: Literal["low", "normal", "high", "urgent"]
    refund: bool
    refund_cents: int = Field(ge=100, le=20_000)


_COMPLAINTS = [
    "my parcel never arrived",
    "I was charged twice this month",
    "the app logs me out every hour",
    "the blender arrived broken",
    "please close my account",
    "the invoice shows the wrong address",
]


def make_stream(
    n: int, *, customers: int = 40, duplicate_ratio: float = 0.15, poison: int = 2, seed: int = 1
) -> tuple[list[bytes | Ticket], int]:
    """Tickets, producer duplicates placed later in the stream, and a few malformed payloads."""
    rng = random.Random(seed)
    seqs: dict[str, int] = {}
    tickets: list[Ticket] = []
    for i in range(n):
        customer = f"cust-{rng.randrange(customers):03d}"
        seqs[customer] = seqs.get(customer, 0) + 1
        tickets.append(
            Ticket(
                ticket_id=f"TCK-{i:05d}",
                customer_id=customer,
                seq=seqs[customer],
                text=f"Hello, {rng.choice(_COMPLAINTS)}. Order #{rng.randrange(10**6):06d}.",
            )
        )
    stream: list[bytes | Ticket] = list(tickets)
    duplicates = int(n * duplicate_ratio)
    for original in rng.sample(tickets, duplicates):
        at = rng.randrange(stream.index(original) + 1, len(stream) + 1)
        stream.insert(at, original.model_copy())
    for k in range(poison):
        stream.insert(rng.randrange(len(stream)), f'{{"ticket_id": "BAD-{k}", "cust'.encode())
    return stream, duplicates


class Ledger:
    """Payments and decisions, in a SQLite file shared by the demo's processes."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS refunds (id INTEGER PRIMARY KEY, consumer TEXT, "
            "ticket_id TEXT, idem_key TEXT, cents INTEGER, at REAL)"
        )
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS decisions (id INTEGER PRIMARY KEY, consumer TEXT, "
            "ticket_id TEXT, decision TEXT, pid INTEGER, at REAL)"
        )
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS dropped (id INTEGER PRIMARY KEY, consumer TEXT, "
            "reason TEXT, at REAL)"
        )

    def record_drop(self, consumer: str, payload: bytes) -> None:
        """Record a message a consumer threw away (by the SHA-256 of its bytes)."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO dropped (consumer, reason, at) VALUES (?, ?, ?)",
                (consumer, hashlib.sha256(payload).hexdigest(), time.time()),
            )

    def refund(
        self, consumer: str, ticket_id: str, cents: int, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Move money (every call counts)."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO refunds (consumer, ticket_id, idem_key, cents, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (consumer, ticket_id, idempotency_key, cents, time.time()),
            )
        return {"refund_id": cur.lastrowid}

    def find_refund(self, idempotency_key: str) -> dict[str, Any] | None:
        """The refund made under a key, if any (the reconcile function)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id FROM refunds WHERE idem_key = ?", (idempotency_key,)
            ).fetchone()
        return None if row is None else {"refund_id": row[0]}

    def record_decision(self, consumer: str, ticket_id: str, decision: Triage) -> None:
        """Record a decision as the consumer acted on it."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO decisions (consumer, ticket_id, decision, pid, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (consumer, ticket_id, decision.model_dump_json(), os.getpid(), time.time()),
            )

    def summary(self, consumer: str, tickets: set[str]) -> dict[str, int]:
        """Conflicting decisions, duplicate effects and lost events of one consumer."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT ticket_id, decision FROM decisions WHERE consumer = ?", (consumer,)
            ).fetchall()
            refunds = self._conn.execute(
                "SELECT ticket_id, COUNT(*) FROM refunds WHERE consumer = ? GROUP BY ticket_id",
                (consumer,),
            ).fetchall()
            (dropped,) = self._conn.execute(
                "SELECT COUNT(DISTINCT reason) FROM dropped WHERE consumer = ?", (consumer,)
            ).fetchone()
        seen: dict[str, set[str]] = {}
        for ticket_id, decision in rows:
            seen.setdefault(ticket_id, set()).add(json.dumps(json.loads(decision), sort_keys=True))
        return {
            "conflicting": sum(1 for d in seen.values() if len(d) > 1),
            "duplicate_effects": sum(n - 1 for _, n in refunds if n > 1),
            "refunds": sum(n for _, n in refunds),
            "decided": len(seen),
            "lost": len(tickets - set(seen)),
            "dropped": int(dropped),
        }

    def decided(self, consumer: str) -> int:
        """Distinct tickets with at least one decision."""
        with self._lock:
            (n,) = self._conn.execute(
                "SELECT COUNT(DISTINCT ticket_id) FROM decisions WHERE consumer = ?", (consumer,)
            ).fetchone()
        return int(n)
