"""The naive consumer the demo compares against.

It is a careful at-least-once consumer, the best one can do without a journal: an asyncio loop
that processes up to eight messages at once (LLM calls are slow), acts on the model's answer,
and commits each partition's offset only up to the lowest message not yet finished, once a
second. Nothing is lost to a crash. But every redelivery (a crash before the commit) and every
producer duplicate is decided again, by a model that answers differently each time, and acted
on again. Malformed messages are logged and skipped.

Run as ``python -m agentstream.demo.naive DB LEDGER LLM_BASE_URL MODEL``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import time

import pydantic

from agentstream.demo.scenario import PROMPT, Ledger, Ticket, Triage
from agentstream.event import Message
from agentstream.llm.base import LLMRequest
from agentstream.llm.openai_provider import OpenAIProvider
from agentstream.transports.base import IgnoreRebalance
from agentstream.transports.embedded import EmbeddedTransport

GROUP = "naive"
log = logging.getLogger("agentstream.demo.naive")


async def consume(db: str, ledger_path: str, llm_url: str, model: str) -> None:
    """Consume ``tickets`` until the topic is drained and nothing is in flight."""
    ledger = Ledger(ledger_path)
    provider = OpenAIProvider(base_url=llm_url, api_key=os.environ.get("OPENAI_API_KEY", "sim"))
    transport = EmbeddedTransport(db, heartbeat_s=0.5, session_timeout_s=2.0)
    await transport.start()
    await transport.subscribe(["tickets"], GROUP, IgnoreRebalance())
    slots = asyncio.Semaphore(8)
    tasks: set[asyncio.Task[None]] = set()
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "Triage", "schema": Triage.model_json_schema()},
    }

    async def handle(value: bytes) -> None:
        async with slots:
            try:
                ticket = Ticket.model_validate_json(value)
            except pydantic.ValidationError as exc:
                log.warning("skipping a malformed message: %s", exc)
                ledger.record_drop(GROUP, value)
                return
            response = await provider.complete(
                LLMRequest(
                    model=model,
                    messages=[
                        {"role": "system", "content": PROMPT},
                        {"role": "user", "content": ticket.text},
                    ],
                    response_format=schema,
                ),
                step_key=f"naive/{ticket.ticket_id}",
            )
            decision = Triage.model_validate_json(response.text or "")
            ledger.record_decision(GROUP, ticket.ticket_id, decision)
            if decision.refund:
                ledger.refund(GROUP, ticket.ticket_id, decision.refund_cents)

    next_commit = time.monotonic() + 1.0
    idle_since = time.monotonic()
    while True:
        room = 8 - len(tasks)
        messages = await transport.poll(room, 0.1) if room > 0 else []
        if room <= 0:
            await asyncio.sleep(0.01)
        for m in messages:
            task = asyncio.create_task(handle(m.value or b""))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(functools.partial(_ack, transport, m))
        if time.monotonic() >= next_commit:
            await transport.commit()
            next_commit = time.monotonic() + 1.0
        if messages or tasks:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > 1.5:
            await transport.commit()
            break
    await transport.close()
    await provider.aclose()


def _ack(transport: EmbeddedTransport, message: Message, _task: asyncio.Task[None]) -> None:
    transport.ack(message)


def main() -> None:
    """Entry point."""
    db, ledger, llm_url, model = sys.argv[1:5]
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(consume(db, ledger, llm_url, model))


if __name__ == "__main__":
    main()
