"""Support-ticket triage on SQS: a FIFO queue in, decisions out, refunds exactly once.

Run it end to end against a moto server it starts itself (no AWS account needed)::

    pip install -e ".[sqs]" "moto[server]"
    python examples/sqs_triage.py

Or run the agent against a real queue (or LocalStack, ElasticMQ, moto) and feed it::

    export AGENTSTREAM_BROKER="sqs://?region=eu-west-1"       # AWS, default credential chain
    export AGENTSTREAM_STORE="postgresql://me@db/agents"       # or sqlite:///triage.db
    agentstream run examples.sqs_triage:app
    agentstream produce tickets.fifo tickets.jsonl --key customer_id --id ticket_id

The agent reads ``tickets.fifo`` (the ``MessageGroupId`` is the customer, so a customer's tickets
run in order while customers run in parallel), asks a (simulated) model for a decision, issues a
refund through an idempotent effect, and writes the decision to ``decisions.fifo``. Producer
duplicates (same ``ticket_id``, a different SQS message) get the recorded decision back, with no
second model call and no second refund. Failures go to ``tickets-dlq.fifo`` with the agent's
journal in the dead-letter record.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, Field

from agentstream import App, Context, Retry
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig


class Ticket(BaseModel):
    ticket_id: str
    customer_id: str
    text: str


class Decision(BaseModel):
    category: Literal["billing", "shipping", "account", "fraud", "other"]
    refund: bool
    refund_cents: int = Field(ge=1, le=50_000)


REFUNDS: list[str] = []
"""The 'payments API' of this example: every refund it is asked for, by idempotency key."""


def refund(customer_id: str, cents: int, idempotency_key: str) -> dict[str, object]:
    REFUNDS.append(idempotency_key)
    return {"customer": customer_id, "cents": cents, "refund_id": idempotency_key[:12]}


app = App(
    "support",
    broker=os.environ.get("AGENTSTREAM_BROKER"),
    store=os.environ.get("AGENTSTREAM_STORE"),
    llm=lambda: SimulatedProvider(SimulatorConfig(seed=None, latency_ms=30)),
)


@app.agent(
    source="tickets.fifo",
    identity=lambda t: t.ticket_id,  # producer duplicates carry the same ticket_id
    output="decisions.fifo",
    dead_letter="tickets-dlq.fifo",
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
def moto() -> Iterator[str]:
    """A moto server on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"sqs://test:test@127.0.0.1:{port}?region=us-east-1&wait_time=1&create_queues=true"
    finally:
        proc.terminate()
        proc.wait(10)


async def demo(broker: str, journal: str) -> None:
    """Produce tickets with duplicates, run the agent until drained, show what happened."""
    from agentstream.event import OutgoingRecord
    from agentstream.testing import AppHarness
    from agentstream.transports.sqs import SQSTransport
    from agentstream.transports.sqs_config import parse_sqs_url

    app.broker_url, app.store_url = broker, journal
    tickets = [
        Ticket(ticket_id=f"T{i}", customer_id=f"c{i % 4}", text=f"ticket {i}: charged twice")
        for i in range(12)
    ]
    stream = tickets + tickets[:4]  # the producer retried the first four
    sqs = SQSTransport(parse_sqs_url(broker))
    for queue in ("tickets.fifo", "decisions.fifo", "tickets-dlq.fifo"):
        await sqs.create_queue(queue)
    await sqs.produce(
        [
            # distinct deduplication ids: SQS delivers the retries, agentstream catches them
            OutgoingRecord(
                "tickets.fifo",
                t.customer_id.encode(),
                t.model_dump_json().encode(),
                dedupe_id=f"send-{n}",
            )
            for n, t in enumerate(stream)
        ]
    )
    async with AppHarness(app) as h:
        await h.wait_drained(timeout_s=60)
    decisions = await sqs.depth("decisions.fifo")
    await sqs.close()
    print(f"{len(stream)} messages ({len(stream) - len(tickets)} producer duplicates)")
    print(f"{decisions} decisions on decisions.fifo, one per ticket")
    print(f"{len(REFUNDS)} refunds for {len(set(REFUNDS))} distinct idempotency keys")


def main() -> None:
    """Run the example against a fresh moto server."""
    with moto() as broker, tempfile.TemporaryDirectory() as d:
        asyncio.run(demo(broker, f"sqlite:///{d}/journal.db"))


if __name__ == "__main__":
    main()
