"""Sending a signal to a waiting event: the one path every sender takes.

``agentstream signal``, :meth:`agentstream.App.signal`, ``ctx.signal`` and a signal source
(:func:`agentstream.signal_sources.signal_source`) all call :func:`send_signal`, which records the
signal in the journal once per signal id (see :mod:`agentstream.journal.waits`) and says what
became of it. A signal without an id gets one from its name and data (:func:`signal_id_of`),
so sending the same approval twice counts once; give distinct ids to signals that are meant to
count separately (two messages of a chat, say).

A signal for a finished (completed or dead-lettered) event is recorded as ``rejected`` and
raises :class:`SignalRejected`; one for an event the journal does not know (yet) is kept, so
that it is applied if the event arrives, and raises :class:`SignalForUnknownEvent` unless the
caller allows that (``unknown_ok``: a sender that may run ahead of the stream).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from agentstream.codec import to_jsonable
from agentstream.failures import AgentStreamError
from agentstream.journal.waits import SignalReceipt, SignalStatus, WaitJournal

__all__ = [
    "SignalError",
    "SignalForUnknownEvent",
    "SignalRejected",
    "send_signal",
    "signal_id_of",
]

log = logging.getLogger("agentstream.signal_sources")


def signal_id_of(name: str, data: Any) -> str:
    """The id of a signal sent without one: its name and data (so a resend counts once)."""
    body = json.dumps([name, to_jsonable(data)], sort_keys=True, separators=(",", ":"))
    return "sig-" + hashlib.sha256(body.encode()).hexdigest()[:32]


class SignalError(AgentStreamError):
    """A signal could not be applied; ``receipt`` says what the journal recorded."""

    def __init__(self, message: str, receipt: SignalReceipt) -> None:
        super().__init__(message)
        self.receipt = receipt


class SignalRejected(SignalError):
    """The event is finished (completed or dead-lettered); the signal is recorded, not applied."""


class SignalForUnknownEvent(SignalError):
    """The journal has no such event (yet); the signal is kept in case it arrives."""


async def send_signal(
    store: WaitJournal,
    agent: str,
    event_id: str,
    name: str,
    data: Any = None,
    *,
    signal_id: str | None = None,
    unknown_ok: bool = False,
) -> SignalReceipt:
    """Record a signal for an event; wake the event if it waits for it.

    Args:
        store: The agent's journal (open).
        agent: The agent whose event it is.
        event_id: The event's identity.
        name: The signal's name (what ``ctx.wait_for(name)`` waits for).
        data: JSON-able data (a pydantic model is dumped).
        signal_id: The signal's identity (default: from its name and data).
        unknown_ok: Keep a signal for an unknown event without raising.

    Returns:
        What became of the signal (delivered, kept, duplicate...).

    Raises:
        SignalRejected: The event is finished.
        SignalForUnknownEvent: The journal has no such event and ``unknown_ok`` is False.
    """
    value = to_jsonable(data)
    sid = signal_id or signal_id_of(name, value)
    receipt = await store.signal(agent, event_id, name, value, signal_id=sid)
    log.info("signal %r (%s) for %s/%s: %s", name, sid, agent, event_id, receipt.status.value)
    if receipt.status == SignalStatus.REJECTED:
        raise SignalRejected(
            f"event {event_id!r} of agent {agent!r} is {receipt.event_state}; signal {name!r} "
            "is recorded as rejected and will not be applied",
            receipt,
        )
    if receipt.status == SignalStatus.UNKNOWN_EVENT and not unknown_ok:
        raise SignalForUnknownEvent(
            f"the journal has no event {event_id!r} of agent {agent!r}; signal {name!r} is "
            "kept and will be applied if the event arrives (check the agent and event id)",
            receipt,
        )
    return receipt
