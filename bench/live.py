"""Events run live straight through the executor, without a broker (replay and storage benches)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from agentstream import App
from agentstream.event import Message
from agentstream.journal import Store
from agentstream.middleware import MiddlewareStack
from agentstream.runtime.executor import Executor
from agentstream.runtime.intake import interpret


async def run_live(
    app: App, agent: str, store: Store, messages: Sequence[Message], concurrency: int
) -> float:
    """Process every message once through the live executor; return the seconds it took."""
    spec = app.agents[agent]
    executor = Executor(
        spec, store, app.provider(), MiddlewareStack(), owner="bench", group=f"bench.{agent}"
    )
    gate = asyncio.Semaphore(concurrency)

    async def one(message: Message) -> None:
        async with gate:
            await executor.process(interpret(spec, message))

    started = time.perf_counter()
    await asyncio.gather(*(one(m) for m in messages))
    return time.perf_counter() - started
