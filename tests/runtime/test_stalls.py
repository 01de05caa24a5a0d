"""User code off the loop, and leases that a stalled loop cannot starve (fast, real SQLite)."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
import threading
import time

from agentstream import App, Context, Retry
from agentstream.agent import AgentSpec
from agentstream.codec import fingerprint
from agentstream.event import Message
from agentstream.journal import StepKind, StepRecord, StepStatus
from agentstream.journal.sqlite import SqliteStore
from agentstream.middleware import LoopStallInput, Middleware, MiddlewareStack
from agentstream.observability.metrics import PrometheusMiddleware
from agentstream.runtime.executor import Executor
from agentstream.runtime.intake import interpret
from agentstream.runtime.keeper import LeaseKeeper
from agentstream.runtime.leases import LeaseBook
from agentstream.testing import AppHarness
from agentstream.usercode import UserCode
from tests.conformance.test_store import META as STORE_META
from tests.runtime.helpers import FAST, Ticket

CURRENT = contextvars.ContextVar[str]("CURRENT", default="unset")

META = dataclasses.replace(STORE_META, message=Message("t", 0, 0, b"k", b"{}"))


async def test_sync_user_code_runs_in_the_pool_with_the_callers_context_variables():
    # Given a context variable set by the caller
    user = UserCode(threads=2)
    CURRENT.set("event-1")
    loop_thread = threading.get_ident()

    def sync_fn(x: int) -> tuple[int, str, int]:
        return x + 1, CURRENT.get(), threading.get_ident()

    async def async_fn(x: int) -> tuple[int, str, int]:
        return x + 2, CURRENT.get(), threading.get_ident()

    try:
        # When a sync and an async callable are called through it
        sync_result = await user.call(sync_fn, 1)
        async_result = await user.call(async_fn, 1)
    finally:
        user.close()
    # Then the sync one ran on another thread and both saw the variable
    assert sync_result[:2] == (2, "event-1") and sync_result[2] != loop_thread
    assert async_result == (3, "event-1", loop_thread)


async def test_a_blocked_event_loop_neither_loses_the_lease_nor_goes_unnoticed(tmp_path):
    # Given a claim with a 1.5 s lease, renewed by the keeper on its own thread and connection
    path = tmp_path / "journal.db"
    store = SqliteStore(path)
    await store.open()
    lease_s = 1.5
    claim = await store.claim("a", "e1", owner="w1", lease_s=lease_s, meta=META)
    book = LeaseBook(lease_s)
    lease = book.hold("e1", claim.epoch, claim.lease_until)
    stalls: list[float] = []
    keeper = LeaseKeeper(
        "a",
        book,
        lambda: SqliteStore(path),
        asyncio.get_running_loop(),
        on_stall=stalls.append,
        stall_threshold_s=0.5,
    )
    await asyncio.to_thread(keeper.start)
    try:
        # When the loop is blocked for three leases (user code that should not be on it)
        time.sleep(3 * lease_s)
        # Then the claim is still ours: renewed while the loop was blocked
        assert lease.remaining() > 0 and not lease.lost
        other = await store.claim("a", "e1", owner="w2", lease_s=lease_s, meta=META)
        assert other.status == "busy", other
        # and the stall was noticed and reported once the loop ran again
        deadline = time.monotonic() + 5
        while not stalls and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert keeper.stalls == 1 and stalls and stalls[0] >= 3 * lease_s - 0.5, stalls
    finally:
        await asyncio.to_thread(keeper.stop)
        await store.close()


def _executor_for(app: App, store: SqliteStore, owner: str) -> tuple[Executor, AgentSpec]:
    spec = next(iter(app.agents.values()))
    return Executor(spec, store, None, MiddlewareStack(), owner=owner, group="g", lease_s=2), spec


TICKET = Message("tickets", 0, 0, b"c1", b'{"ticket_id": "T1", "customer_id": "c1"}')


async def test_a_takeover_waits_for_the_deadline_of_an_intent_started_under_an_earlier_epoch(
    tmp_path,
):
    # Given an effect whose earlier owner recorded its intent with a deadline 2 s away and then
    # gave the claim back (a shutdown while its sync call was still running in a thread)
    app = App("t", broker=f"sqlite:///{tmp_path / 'log.db'}", config=FAST)
    reconciled_at: list[float] = []

    def lookup(key: str) -> dict[str, str]:
        reconciled_at.append(time.time())
        return {"found": key}

    @app.agent(source="tickets", identity=lambda t: t.ticket_id)
    async def pay(ctx: Context, ticket: Ticket) -> None:
        await ctx.effect("pay", lambda: None, reconcile=lookup)

    store = SqliteStore(tmp_path / "journal.db")
    await store.open()
    try:
        executor, spec = _executor_for(app, store, "w1")
        event = interpret(spec, TICKET)
        first = await store.claim(spec.name, "T1", owner="w0", lease_s=2, meta=META)
        deadline = time.time() + 2.0
        intent = StepRecord(
            seq=0,
            kind=StepKind.EFFECT,
            name="pay",
            fingerprint=fingerprint("effect", "pay", {"args": [], "kwargs": {}}),
            status=StepStatus.STARTED,
            request={"args": [], "kwargs": {}},
            idempotency_key="k",
            meta={"deadline": deadline},
        )
        await store.write_step(spec.name, "T1", first.epoch, intent)
        await store.release(spec.name, "T1", first.epoch)
        # When another worker claims the event at once
        outcome = await executor.process(event)
        # Then it reconciled only after the earlier owner's deadline, and completed
        assert outcome.outcome == "completed", outcome
        assert reconciled_at and reconciled_at[0] >= deadline
    finally:
        await store.close()


async def test_an_async_effect_still_running_at_its_deadline_is_cancelled_and_reconciled(
    tmp_path,
):
    # Given an async effect that hangs past its 0.3 s timeout on the first attempt
    app = App("t", broker=f"sqlite:///{tmp_path / 'log.db'}", config=FAST)
    calls: list[int] = []
    finished: list[int] = []

    async def charge() -> str:
        calls.append(len(calls) + 1)
        await asyncio.sleep(5 if len(calls) == 1 else 0)
        finished.append(len(calls))
        return "charged"

    @app.agent(
        source="tickets",
        identity=lambda t: t.ticket_id,
        retry=Retry(attempts=3, backoff_initial=0.01, backoff_max=0.01),
    )
    async def pay(ctx: Context, ticket: Ticket) -> None:
        await ctx.effect("charge", charge, timeout=0.3, idempotent=True)

    store = SqliteStore(tmp_path / "journal.db")
    await store.open()
    try:
        executor, spec = _executor_for(app, store, "w1")
        started = time.monotonic()
        first = await executor.process(interpret(spec, TICKET))
        # Then the first attempt was cut off at the deadline as a transient failure
        assert first.outcome == "retry" and time.monotonic() - started < 3
        assert finished == []
        [failure] = await store.failures(spec.name, "T1")
        assert failure.error_type.endswith("EffectTimeoutError")
        # and the retry repeated it with the same key (idempotent) and completed
        await asyncio.sleep(0.05)
        assert (await executor.process(interpret(spec, TICKET))).outcome == "completed"
        assert calls == [1, 2] and finished == [2]
    finally:
        await store.close()


async def test_a_handler_whose_lease_runs_out_unrenewed_stops_before_its_next_step(tmp_path):
    # Given a worker whose leases nobody renews (its journal is unreachable, say), 2 s long
    app = App("t", broker=f"sqlite:///{tmp_path / 'log.db'}", config=FAST)
    ran: list[str] = []

    @app.agent(source="tickets", identity=lambda t: t.ticket_id)
    async def slow(ctx: Context, ticket: Ticket) -> None:
        await ctx.step("first", ran.append, "first")
        await asyncio.sleep(1.7)  # past three quarters of the lease
        await ctx.step("second", ran.append, "second")

    store = SqliteStore(tmp_path / "journal.db")
    await store.open()
    try:
        executor, spec = _executor_for(app, store, "w1")
        # When its handler reaches the next step with the lease about to end
        outcome = await executor.process(interpret(spec, TICKET))
        # Then it stopped before that step ran, as lease_lost (no write was rejected)
        assert outcome.outcome == "lease_lost"
        assert ran == ["first"]
    finally:
        await store.close()


class StallReports(Middleware):
    """A user middleware that records the loop stalls it is told about."""

    def __init__(self) -> None:
        self.stalls: list[LoopStallInput] = []

    async def on_loop_stall(self, inp: LoopStallInput) -> None:
        self.stalls.append(inp)


async def test_a_user_middleware_hears_of_a_loop_stall_caused_by_a_blocking_call_in_a_handler(
    tmp_path,
):
    # Given a user middleware with on_loop_stall (and the Prometheus one), a 0.3 s stall
    # threshold, and an async handler that blocks the loop with a synchronous sleep
    reports = StallReports()
    metrics = PrometheusMiddleware()
    config = FAST.model_copy(update={"loop_stall_s": 0.3})
    app = App(
        "t",
        broker=f"sqlite:///{tmp_path / 'log.db'}",
        config=config,
        middleware=[reports, metrics],
    )

    @app.agent(source="tickets", identity=lambda t: t.ticket_id)
    async def blocking(ctx: Context, ticket: Ticket) -> None:
        time.sleep(1.0)  # user code that should not be on the loop, but is

    async with AppHarness(app) as h:
        # When one event is handled
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c1")])
        await h.wait_drained(timeout_s=30)
        deadline = time.monotonic() + 5
        while not reports.stalls and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    # Then the user's hook was called once the loop ran again, with the stall's length,
    # and the stall was counted
    assert [s.agent for s in reports.stalls] == ["blocking"], reports.stalls
    assert 0.5 <= reports.stalls[0].stall_s < 5, reports.stalls
    assert (
        metrics.registry.get_sample_value("agentstream_loop_stalls_total", {"agent": "blocking"})
        == 1
    )


def test_every_middleware_hook_is_in_the_stacks_registry():
    # Given every hook the Middleware base class declares
    hooks = [
        name
        for name, value in vars(Middleware).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(value)
    ]
    assert "on_loop_stall" in hooks
    for name in hooks:
        # When a middleware overrides just that hook
        async def hook(self: Middleware, inp: object) -> None:
            return None

        stack = MiddlewareStack([type(f"Only_{name}", (Middleware,), {name: hook})()])
        # Then the stack wants it (so it is called) and has a dispatcher of that name
        assert stack.wants(getattr(Middleware, name)), name
        assert inspect.iscoroutinefunction(getattr(MiddlewareStack, name, None)), name
