"""The extras at their floors, run by .ci/lowest in the lowest-direct venv with every extra.

Usage: python extras_smoke.py POSTGRES_DSN WORKDIR AGENTSTREAM_BIN

Imports each extra's modules, claims and completes one event in a PostgreSQL journal on a
schema of its own (dropped afterwards), then runs ``agentstream run --metrics-port`` on a tiny
app (SQLite broker, PostgreSQL journal) until /metrics counts the one produced event.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

MODULES = [
    "agentstream.transports.kafka",
    "agentstream.journal.postgres",
    "agentstream.transports.sqs",
    "agentstream.llm.anthropic_provider",
    "agentstream.observability.metrics",
    "agentstream.observability.tracing",
    "agentstream.observability.otel_sdk",
]

APP = """
import os

from pydantic import BaseModel

from agentstream import App, Context


class Ticket(BaseModel):
    id: str


app = App("floors", broker=os.environ["FLOORS_BROKER"], store=os.environ["FLOORS_STORE"])


@app.agent(source="tickets", identity=lambda t: t.id)
async def echo(ctx: Context, ticket: Ticket) -> dict:
    return {"seen": ticket.id}
"""


async def journal_round_trip(url: str) -> None:
    """Claim, complete and re-claim one event in the journal at ``url``."""
    from agentstream.backends import Backends
    from agentstream.journal import ClaimStatus, Completion, EventMeta

    meta = EventMeta(
        key="k",
        topic="t",
        partition=0,
        offset=0,
        timestamp_ms=0,
        input_hash="ab" * 32,
        group_id="g",
    )
    store = Backends("embedded://", url).store()
    await store.open()
    try:
        claim = await store.claim("a", "e1", owner="w1", lease_s=10, meta=meta)
        assert claim.status == ClaimStatus.CLAIMED, claim
        await store.complete("a", "e1", claim.epoch, Completion(result={"ok": 1}))
        again = await store.claim("a", "e1", owner="w2", lease_s=10, meta=meta)
        assert again.status == ClaimStatus.COMPLETED, again
    finally:
        await store.close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_with_metrics(bin_dir: Path, work: Path, store_url: str) -> None:
    """Produce one event, run the tiny app until /metrics counts it, stop it with SIGTERM."""
    (work / "floors_app.py").write_text(APP)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FLOORS_BROKER": f"sqlite:///{work / 'broker.db'}",
        "FLOORS_STORE": store_url,
        "PYTHONPATH": str(work),
    }
    port = free_port()
    broker = env["FLOORS_BROKER"]
    produce = [str(bin_dir / "agentstream"), "produce", "tickets", "-", f"--broker={broker}"]
    subprocess.run(produce, input='{"id": "t1"}\n', text=True, env=env, cwd=work, check=True)
    run = [str(bin_dir / "agentstream"), "run", "floors_app:app", f"--metrics-port={port}"]
    proc = subprocess.Popen(run, env=env, cwd=work, stderr=subprocess.PIPE, text=True)
    text, deadline = "", time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                pass
            if any(
                line.startswith("agentstream_deliveries_total{") and line.endswith(" 1.0")
                for line in text.splitlines()
            ):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no delivery counted on /metrics:\n{text[-2000:]}")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]


def main() -> None:
    """Imports, journal round trip, run --metrics-port; drops the schemas it made."""
    dsn, work, bin_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    for name in MODULES:
        importlib.import_module(name)
    import psycopg
    from psycopg import sql

    schemas = [f"floors_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    try:
        asyncio.run(journal_round_trip(f"{dsn}?schema={schemas[0]}"))
        work.mkdir(parents=True, exist_ok=True)
        run_with_metrics(bin_dir, work, f"{dsn}?schema={schemas[1]}")
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for name in schemas:
                drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                conn.execute(drop)
    print("extras: imports, PostgreSQL journal round trip, run --metrics-port: ok")


if __name__ == "__main__":
    main()
