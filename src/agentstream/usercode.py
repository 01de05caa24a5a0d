"""Where user callables run: never on the event loop.

A synchronous callable (an effect written with ``requests``, ``psycopg`` or ``boto3``, a
reconcile function, a ``ctx.step`` function, a tool) runs in a bounded thread pool, so it can
block or burn CPU without stopping polling, commits or other events on the loop. An async
callable is awaited on the loop. The caller's :mod:`contextvars` context is copied into the
thread (as :func:`asyncio.to_thread` does), so context variables set around the call are seen
inside it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

DEFAULT_THREADS = 32
"""Default size of the pool (``RuntimeConfig.user_threads``)."""


def is_async_callable(fn: Any) -> bool:
    """Whether calling ``fn`` returns a coroutine (async def, partials, ``async __call__``)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class UserCode:
    """Runs user callables: sync ones in a thread pool, async ones on the loop.

    Args:
        threads: Size of a dedicated pool; None uses the loop's default executor (as
            :func:`asyncio.to_thread` does), for contexts outside a worker such as replay.
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="agentstream-user")
            if threads is not None
            else None
        )

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` off the loop when sync; await the result if awaitable."""
        if is_async_callable(fn):
            result = fn(*args, **kwargs)
        else:
            context = contextvars.copy_context()
            call = functools.partial(context.run, fn, *args, **kwargs)
            result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        if inspect.isawaitable(result):
            result = await result
        return result

    def close(self) -> None:
        """Stop the pool's idle threads (running calls finish on their own)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
