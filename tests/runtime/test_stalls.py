"""User code off the loop, and leases that a stalled loop cannot starve (fast, real SQLite)."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import threading
import time

from agentstream.event import Message
from agentstream.journal.sqlite import SqliteStore
from agentstream.runtime.keeper import LeaseKeeper
from agentstream.runtime.leases import LeaseBook
from agentstream.usercode import UserCode
from tests.conformance.test_store import META as STORE_META

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
