"""Micro-batching of journal claims and completions.

Events run as independent tasks, but their claims and completions mostly happen in bursts (a
poll hands over hundreds of events at once). The batcher collects the calls made during one turn
of the event loop and sends them to the store as one ``claim_many`` / ``complete_many``: one
transaction (and, on PostgreSQL, one round trip) for the lot. Each caller still gets its own
answer, and a fenced completion fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from agentstream.journal.records import Claim, Completion, EventMeta
from agentstream.journal.store import EventJournal

Req = TypeVar("Req")
Res = TypeVar("Res")


class _Coalescer(Generic[Req, Res]):
    """Gathers requests made in one loop turn and answers them with one batched call."""

    def __init__(self, call: Callable[[list[Req]], Awaitable[Sequence[Res]]], limit: int) -> None:
        self._call = call
        self._limit = limit
        self._pending: list[tuple[Req, asyncio.Future[Res]]] = []
        self._scheduled = False

    def submit(self, request: Req) -> asyncio.Future[Res]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Res] = loop.create_future()
        self._pending.append((request, future))
        if len(self._pending) >= self._limit:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            asyncio.get_running_loop().create_task(self._send(batch))

    async def _send(self, batch: list[tuple[Req, asyncio.Future[Res]]]) -> None:
        try:
            answers = await self._call([request for request, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)


class JournalBatcher:
    """Claims and completions of one agent, coalesced per event-loop turn.

    Args:
        store: The journal.
        agent: Agent name.
        owner: Worker id recorded with claims.
        lease_s: Claim lease.
        limit: Most calls in one batch.
    """

    def __init__(
        self, store: EventJournal, agent: str, *, owner: str, lease_s: float, limit: int = 500
    ) -> None:
        self._store = store
        self._agent = agent
        self._owner = owner
        self._lease_s = lease_s
        self._claims: _Coalescer[tuple[str, EventMeta], Claim] = _Coalescer(self._claim_many, limit)
        self._completions: _Coalescer[tuple[str, int, Completion], BaseException | None] = (
            _Coalescer(self._complete_many, limit)
        )

    async def claim(self, event_id: str, meta: EventMeta) -> Claim:
        """Claim one event (batched with others claimed in the same loop turn)."""
        return await self._claims.submit((event_id, meta))

    async def complete(self, event_id: str, epoch: int, completion: Completion) -> None:
        """Complete one event; raises FencedError if the claim moved on."""
        error = await self._completions.submit((event_id, epoch, completion))
        if error is not None:
            raise error

    async def _claim_many(self, requests: list[tuple[str, EventMeta]]) -> list[Claim]:
        return await self._store.claim_many(
            self._agent, requests, owner=self._owner, lease_s=self._lease_s
        )

    async def _complete_many(
        self, items: list[tuple[str, int, Completion]]
    ) -> list[BaseException | None]:
        return list(await self._store.complete_many(self._agent, items))
