"""Signal sources: a topic or queue whose records are signals for waiting events.

A **signal source** (:func:`signal_source`) is a topic or queue on the app's broker whose
records are signals (JSON: ``agent``, ``event_id``, ``name``, ``data``, optional ``id``), so a
web app or another service can answer waits by producing a record. It is an agent like any
other (exactly-once, offsets committed once applied); a signal's id is the record's ``id``
field, else the record's own identity (its CloudEvents ``id`` header, or its coordinates), so
a redelivered record applies once. Each signal is sent with ``ctx.signal``, the one path of
:mod:`agentstream.journal.signals`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agentstream.journal.signals import SignalRejected

if TYPE_CHECKING:
    from agentstream.app import App
    from agentstream.context import Context

__all__ = ["SignalMessage", "signal_source"]

log = logging.getLogger("agentstream.signal_sources")


class SignalMessage(BaseModel):
    """A record of a signal source: which event gets which signal."""

    agent: str
    event_id: str
    name: str
    data: Any = None
    id: str | None = None
    """The signal's identity (default: the record's identity)."""


def signal_source(app: App, source: str, *, name: str = "signals", **options: Any) -> None:
    """Declare an agent of ``app`` that applies the signals it reads from ``source``.

    Args:
        app: The app whose journal holds the waiting events.
        source: Topic or queue of :class:`SignalMessage` records (JSON).
        name: The agent's name.
        **options: Further ``@app.agent`` options (``identity``, ``concurrency``...).
    """

    async def apply_signal(ctx: Context, message: SignalMessage) -> None:
        try:
            await ctx.signal(
                message.agent,
                message.event_id,
                message.name,
                message.data,
                signal_id=message.id or ctx.identity,
            )
        except SignalRejected as exc:  # recorded as rejected; nothing to retry
            log.warning("signal source %s: %s", source, exc)

    app.agent(source=source, name=name, input_type=SignalMessage, **options)(apply_signal)
