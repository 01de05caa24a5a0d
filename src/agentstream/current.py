"""The running event's :class:`~agentstream.context.Context`, reachable without plumbing.

The executor sets it around the handler, so code deep inside a framework (a tool function, a
model client's transport) finds the journal of the event it runs for with
:func:`current_context`. It is a :class:`contextvars.ContextVar`: each event's task sees its own
Context, tasks started inside a handler inherit it, and so do worker threads started with
:func:`asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

from agentstream.failures import NoCurrentContext

if TYPE_CHECKING:
    from agentstream.context import Context

__all__ = ["current_context", "maybe_current_context", "running"]

_current: ContextVar[Context | None] = ContextVar("agentstream_current_context", default=None)


def current_context() -> Context:
    """The Context of the event whose handler is running.

    Raises:
        NoCurrentContext: Called outside an agent's handler.
    """
    ctx = _current.get()
    if ctx is None:
        raise NoCurrentContext(
            "agentstream.current_context() was called outside an agent's handler: it only "
            "works in code that runs while an event is handled (directly or in tasks and "
            "threads the handler starts)"
        )
    return ctx


def maybe_current_context() -> Context | None:
    """The running event's Context, or None outside a handler."""
    return _current.get()


@contextlib.contextmanager
def running(ctx: Context) -> Iterator[None]:
    """Make ``ctx`` the current context for the duration of the block."""
    token = _current.set(ctx)
    try:
        yield
    finally:
        _current.reset(token)
