"""Lease renewal against the claim's own last writes, and real takeovers (fast, real SQLite)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from agentstream import App, Context, Retry
from agentstream.event import Message
from agentstream.failures import LeaseLostError
from agentstream.journal.sqlite import SqliteStore
from agentstream.middleware import (
    CompletedInput,
    DeadLetterInput,
    Middleware,
    MiddlewareStack,
    RetryInput,
    WaitInput,
)
from agentstream.runtime.executor import Executor
from agentstream.runtime.intake import interpret
from tests.conformance.test_store import META as STORE_META
from tests.runtime.helpers import FAST, Ticket

TICKET = Message("tickets", 0, 0, b"c1", b'{"ticket_id": "T1", "customer_id": "c1"}')


class Flaky(Exception):
    """A failure the agent's retry policy treats as transient."""


class RenewAfterLastWrite(Middleware):
    """Renews the executor's leases as the lease keeper does, between the claim's own last
    journal write and the executor forgetting the lease (the window of a group commit).
    """

    def __init__(self) -> None:
        self.executor: Executor | None = None
        self.store: SqliteStore | None = None
        self.found_lost: list[str] | None = None
        self.lease_lost_flag: bool | None = None

    async def _renew(self) -> None:
        assert self.executor is not None and self.store is not None
        book = self.executor.leases
        claims = book.claims()
        assert claims, "the lease is still in the book during this hook"
        asked = time.time()
        lost = await self.store.renew(self.executor.spec.name, claims, book.lease_s)
        self.found_lost = book.renewed(claims, lost, asked + book.lease_s)
        lease = book.get("T1")
        self.lease_lost_flag = lease.lost if lease is not None else None

    async def after_complete(self, inp: CompletedInput) -> None:
        await self._renew()

    async def on_retry(self, inp: RetryInput) -> None:
        await self._renew()

    async def on_dead_letter(self, inp: DeadLetterInput) -> None:
        await self._renew()

    async def on_wait(self, inp: WaitInput) -> None:
        await self._renew()


@pytest.mark.parametrize("ending", ["completed", "retry", "dead_lettered", "waiting"])
async def test_a_renewal_that_finds_the_claim_ended_by_its_own_last_write_is_no_takeover(
    tmp_path, ending
):
    # Given a worker whose handler ends its claim itself (completion, retry backoff, dead
    # letter or wait), and a renewal that lands after that write but before the lease is
    # dropped from the book (as when the keeper's thread renews during a group commit)
    app = App("t", broker=f"sqlite:///{tmp_path / 'log.db'}", config=FAST)

    @app.agent(
        source="tickets",
        identity=lambda t: t.ticket_id,
        retry=Retry(attempts=3 if ending == "retry" else 1, retry_on=(Flaky,)),
    )
    async def handle(ctx: Context, ticket: Ticket) -> Any:
        if ending == "retry":
            raise Flaky("try again")
        if ending == "dead_lettered":
            raise ValueError("a bug")
        if ending == "waiting":
            await ctx.sleep(3600)
        return "ok"

    spec = next(iter(app.agents.values()))
    store = SqliteStore(tmp_path / "journal.db")
    await store.open()
    renew = RenewAfterLastWrite()
    executor = Executor(spec, store, None, MiddlewareStack([renew]), owner="w1", group="g")
    renew.executor, renew.store = executor, store
    try:
        # When the event is processed
        outcome = await executor.process(interpret(spec, TICKET))
        # Then the delivery ended as its handler said, and the renewal did not call the
        # claim's own ending a takeover (no "claim was taken over", no lost lease)
        assert outcome.outcome == ending, outcome
        assert renew.found_lost == [], renew.found_lost
        assert renew.lease_lost_flag is False
        assert executor.leases.claims() == []
    finally:
        await store.close()


async def test_a_claim_taken_over_while_its_handler_runs_is_still_found_lost(tmp_path):
    # Given a handler running under a 0.4 s lease
    app = App("t", broker=f"sqlite:///{tmp_path / 'log.db'}", config=FAST)
    ran: list[str] = []
    in_handler = asyncio.Event()
    go_on = asyncio.Event()

    @app.agent(source="tickets", identity=lambda t: t.ticket_id)
    async def slow(ctx: Context, ticket: Ticket) -> None:
        await ctx.step("first", ran.append, "first")
        in_handler.set()
        await go_on.wait()
        await ctx.step("second", ran.append, "second")

    spec = next(iter(app.agents.values()))
    store = SqliteStore(tmp_path / "journal.db")
    await store.open()
    executor = Executor(spec, store, None, MiddlewareStack(), owner="w1", group="g", lease_s=0.4)
    try:
        task = asyncio.create_task(executor.process(interpret(spec, TICKET)))
        await in_handler.wait()
        # When its lease runs out and another worker claims the event
        await asyncio.sleep(0.5)
        other = await store.claim(spec.name, "T1", owner="w2", lease_s=30, meta=STORE_META)
        assert other.status == "claimed", other
        book = executor.leases
        claims = book.claims()
        lost = await store.renew(spec.name, claims, book.lease_s)
        newly = book.renewed(claims, lost, time.time() + book.lease_s)
        # Then the renewal finds the claim taken over, and the handler stops before its next
        # step as lease_lost
        assert newly == ["T1"]
        lease = book.get("T1")
        assert lease is not None and lease.lost
        with pytest.raises(LeaseLostError, match="taken over"):
            lease.check()
        go_on.set()
        outcome = await task
        assert outcome.outcome == "lease_lost", outcome
        assert ran == ["first"]
    finally:
        await store.close()
