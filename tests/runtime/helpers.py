"""Small agents and settings shared by the runtime tests."""

from __future__ import annotations

import json
from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field

from agentstream import App, RuntimeConfig
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig
from agentstream.middleware import Middleware, ProcessOutcome

FAST = RuntimeConfig(
    lease_s=2.0,
    session_timeout_s=2.0,
    heartbeat_s=0.2,
    commit_interval_s=0.05,
    shutdown_grace_s=2.0,
    revoke_grace_s=1.0,
    poll_timeout_s=0.05,
)


class Ticket(BaseModel):
    ticket_id: str
    customer_id: str
    seq: int = 0
    text: str = "where is my order?"
    version: int | None = None


class Decision(BaseModel):
    category: Literal["billing", "shipping", "account", "other"]
    refund_cents: int = Field(ge=0, le=10_000)


class Outcomes(Middleware):
    """Counts delivery outcomes (completed, duplicate, stale, dead_lettered...)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.failures: list[ProcessOutcome] = []

    async def after_process(self, inp: ProcessOutcome) -> None:
        self.counts[inp.outcome] += 1
        if inp.failure_class:
            self.failures.append(inp)


def simulated(latency_ms: float = 1.0, **kw: object) -> SimulatedProvider:
    return SimulatedProvider(SimulatorConfig(latency_ms=latency_ms, **kw))  # type: ignore[arg-type]


def make_app(db_url: str, provider: SimulatedProvider | None = None, **kw: object) -> App:
    return App("test", broker=db_url, llm=provider or simulated(), config=FAST, **kw)  # type: ignore[arg-type]


def tickets(n: int, keys: int = 5) -> list[Ticket]:
    seqs: Counter[str] = Counter()
    out = []
    for i in range(n):
        customer = f"c{i % keys}"
        seqs[customer] += 1
        out.append(Ticket(ticket_id=f"T{i:04d}", customer_id=customer, seq=seqs[customer]))
    return out


def values(messages: list) -> list[dict]:
    return [json.loads(m.value) for m in messages]
