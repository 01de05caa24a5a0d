"""The outside world the chaos agent acts on: a payments table, observations and kill marks.

It lives in its own SQLite file, written synchronously and committed at once, so that what the
agent did survives the SIGKILL of the worker that did it. The effect counts every execution; it
does not deduplicate on the idempotency key (a real payment API might, but then the test could
not see a duplicate). ``lookup_refund`` is the reconcile function.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS refunds (
    id INTEGER PRIMARY KEY, idem_key TEXT NOT NULL, ticket_id TEXT NOT NULL,
    cents INTEGER NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_key ON refunds (idem_key);
CREATE TABLE IF NOT EXISTS observations (
    id INTEGER PRIMARY KEY, ticket_id TEXT NOT NULL, customer_id TEXT NOT NULL,
    seq INTEGER NOT NULL, decision TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rebalances (
    id INTEGER PRIMARY KEY, change TEXT NOT NULL, partitions INTEGER NOT NULL,
    pid INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outcomes (
    id INTEGER PRIMARY KEY, ticket_id TEXT NOT NULL, outcome TEXT NOT NULL,
    pid INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kill_marks (point TEXT NOT NULL, ticket_id TEXT NOT NULL,
    pid INTEGER NOT NULL, PRIMARY KEY (point, ticket_id));
CREATE TABLE IF NOT EXISTS gates (name TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS effects (
    id INTEGER PRIMARY KEY, ticket_id TEXT NOT NULL, effect TEXT NOT NULL,
    idem_key TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS effects_key ON effects (idem_key);
"""


class World:
    """Connection to the world file (one per process)."""

    def __init__(self, path: str | Path, kill_plan: str = "") -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        with self._lock:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
        self.plan: set[tuple[str, str]] = set()
        for item in filter(None, kill_plan.split(",")):
            point, ticket = item.split(":", 1)
            self.plan.add((point, ticket))

    def close(self) -> None:
        """Close this connection."""
        with self._lock:
            self._conn.close()

    def refund(self, ticket_id: str, cents: int, idempotency_key: str) -> dict[str, Any]:
        """The effect: move money. Counted on every execution."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO refunds (idem_key, ticket_id, cents, pid, at) VALUES (?, ?, ?, ?, ?)",
                (idempotency_key, ticket_id, cents, os.getpid(), time.time()),
            )
        # Refunds depend on random decisions, so this point is planned by count: "#40" fires
        # right after the 40th refund row is written, whichever ticket it belongs to.
        self.maybe_kill("after_effect", f"#{cur.lastrowid}")
        return {"refund_id": cur.lastrowid}

    def lookup_refund(self, idempotency_key: str) -> dict[str, Any] | None:
        """Reconcile: the refund made under this key, if any."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id FROM refunds WHERE idem_key = ? ORDER BY id LIMIT 1", (idempotency_key,)
            ).fetchone()
        return None if row is None else {"refund_id": row[0]}

    def effect(
        self, ticket_id: str, effect: str, idempotency_key: str, sleep_s: float, burn_s: float
    ) -> dict[str, Any]:
        """A slow synchronous effect: sleep, burn CPU, then write its row (no unique key)."""
        time.sleep(sleep_s)
        burn(burn_s)
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO effects (ticket_id, effect, idem_key, pid, at) VALUES (?, ?, ?, ?, ?)",
                (ticket_id, effect, idempotency_key, os.getpid(), time.time()),
            )
        return {"row": cur.lastrowid}

    def lookup_effect(self, idempotency_key: str) -> dict[str, Any] | None:
        """Reconcile: the effect row written under this key, if any."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id FROM effects WHERE idem_key = ? ORDER BY id LIMIT 1", (idempotency_key,)
            ).fetchone()
        return None if row is None else {"row": row[0]}

    def observe(self, ticket_id: str, customer_id: str, seq: int, decision: str) -> None:
        """Record the decision one execution of the handler saw."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO observations (ticket_id, customer_id, seq, decision, pid, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (ticket_id, customer_id, seq, decision, os.getpid(), time.time()),
            )

    def rebalance(self, change: str, partitions: int) -> None:
        """Record that this worker was assigned or lost partitions."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO rebalances (change, partitions, pid, at) VALUES (?, ?, ?, ?)",
                (change, partitions, os.getpid(), time.time()),
            )

    def outcome(self, ticket_id: str, outcome: str) -> None:
        """Record how one delivery ended in this process."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO outcomes (ticket_id, outcome, pid, at) VALUES (?, ?, ?, ?)",
                (ticket_id, outcome, os.getpid(), time.time()),
            )

    def first_time(self, point: str, ticket_id: str) -> bool:
        """True for the first caller (in any process) to reach ``point`` for ``ticket_id``."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO kill_marks (point, ticket_id, pid) VALUES (?, ?, ?)",
                (point, ticket_id, os.getpid()),
            )
        return cur.rowcount == 1

    def hold(self, ticket_id: str) -> dict[str, Any]:
        """A step that blocks (in a thread) until the test opens its gate.

        The first caller for a ticket marks ``hold`` and waits at gate ``hold:<ticket>``, the
        second marks ``hold_successor`` and waits at ``hold_successor:<ticket>``; later callers
        pass. Returns the caller's pid, so the journal shows whose step result stands.
        """
        for point in ("hold", "hold_successor"):
            if self.first_time(point, ticket_id):
                while not self.gate_open(f"{point}:{ticket_id}"):
                    time.sleep(0.02)
                break
        return {"pid": os.getpid()}

    def open_gate(self, name: str) -> None:
        """Let the holder waiting at gate ``name`` go."""
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO gates (name, at) VALUES (?, ?)", (name, time.time())
            )

    def gate_open(self, name: str) -> bool:
        """Whether gate ``name`` was opened."""
        with self._lock:
            row = self._conn.execute("SELECT 1 FROM gates WHERE name = ?", (name,)).fetchone()
        return row is not None

    def maybe_kill(self, point: str, ticket_id: str) -> None:
        """SIGKILL this process if the plan says so and it has not fired yet."""
        if (point, ticket_id) not in self.plan:
            return
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO kill_marks (point, ticket_id, pid) VALUES (?, ?, ?)",
                (point, ticket_id, os.getpid()),
            )
        if cur.rowcount == 1:
            os.kill(os.getpid(), signal.SIGKILL)


def burn(seconds: float) -> None:
    """Keep a core busy in Python code (holding the GIL between switches) for ``seconds``."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n = (n * 31 + 7) % 1_000_003


def read_world(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the world file, per table.

    The file and its tables are created first if missing, so a read that comes before any
    worker has opened the world sees empty tables instead of failing.
    """
    World(path).close()
    conn = sqlite3.connect(str(path))
    conn.row_factory = sqlite3.Row
    try:
        return {
            table: [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
            for table in (
                "refunds",
                "observations",
                "kill_marks",
                "rebalances",
                "outcomes",
                "effects",
            )
        }
    finally:
        conn.close()
