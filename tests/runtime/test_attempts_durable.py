"""Attempt counts live in the journal, not in a worker's memory (fast, no broker).

Each delivery is processed by a brand-new Executor, as after a worker restart: only the
journal carries the count from one attempt to the next.
"""

from __future__ import annotations

import asyncio

from agentstream import App, Retry
from agentstream.event import Message
from agentstream.failures import ProviderUnavailable
from agentstream.journal import EventState
from agentstream.journal.sqlite import SqliteStore
from agentstream.middleware import MiddlewareStack
from agentstream.runtime.executor import Done, Executor, RetryLater
from agentstream.runtime.intake import interpret
from tests.runtime.helpers import FAST, Ticket


async def test_a_restarted_worker_continues_the_attempt_count_and_dead_letters_at_the_limit(
    tmp_path,
):
    # Given an agent allowed 3 attempts whose handler always fails transiently
    app = App("t", broker=f"sqlite:///{tmp_path / 'log.db'}", config=FAST)
    calls = []

    @app.agent(
        source="tickets",
        identity=lambda t: t.ticket_id,
        retry=Retry(attempts=3, backoff_initial=0.01, backoff_max=0.01),
    )
    async def flaky(ctx, ticket: Ticket) -> None:
        calls.append(ctx.attempt)
        raise ProviderUnavailable("model API down")

    spec = app.agents["flaky"]
    message = Message("tickets", 0, 0, b"c1", Ticket(ticket_id="T1", customer_id="c1")
                      .model_dump_json().encode())  # fmt: skip
    store = SqliteStore(tmp_path / "journal.db")
    await store.open()
    try:
        outcomes = []
        for worker in range(3):
            # When each delivery is handled by a fresh executor (a restarted worker)
            executor = Executor(
                spec, store, None, MiddlewareStack(), owner=f"w{worker}", group="g", lease_s=5
            )
            while True:
                outcome = await executor.process(interpret(spec, message))
                if outcome.outcome != "busy":
                    break
                await asyncio.sleep(outcome.delay_s if isinstance(outcome, RetryLater) else 0)
            outcomes.append(outcome)
        # Then the handler saw attempts 1, 2, 3 and the third ended the event as a dead letter
        assert calls == [1, 2, 3]
        assert [type(o) for o in outcomes] == [RetryLater, RetryLater, Done]
        assert outcomes[-1].outcome == "dead_lettered"
        record = await store.get_event("flaky", "T1")
        assert record is not None and record.state == EventState.DEAD
        assert record.attempts == 3
        assert [f.attempt for f in await store.failures("flaky", "T1")] == [1, 2, 3]
    finally:
        await store.close()
