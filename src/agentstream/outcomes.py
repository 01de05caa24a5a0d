"""How one delivery of an event ended: the executor's answer to the scheduler.

The executor returns :class:`Done` (acknowledge the delivery) or :class:`RetryLater` (run the
same event again after a delay; later events of its key wait), each naming a
:class:`DeliveryOutcome`. The scheduler acts on the type, middleware (metrics, logs, traces)
sees the outcome in :class:`~agentstream.middleware.ProcessOutcome`.

Two outcomes end a delivery whose claim moved on, and they are told apart:

- ``fenced``: a journal write carrying this claim's epoch was rejected (the journal had
  already granted the event to a newer epoch);
- ``lease_lost``: the lease keeper found the claim gone, or could not renew it before it ran
  out, and the handler stopped before its next journaled step; nothing was rejected.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["DeliveryOutcome", "Done", "Outcome", "RetryLater"]


class DeliveryOutcome(enum.StrEnum):
    """How a delivery ended (a string: metric labels and logs show its value)."""

    COMPLETED = "completed"
    """The handler ran and the event completed."""
    DUPLICATE = "duplicate"
    """The event was already completed; its recorded outputs stand."""
    DEAD = "dead"
    """The event was already dead-lettered."""
    DEAD_LETTERED = "dead_lettered"
    """This delivery dead-lettered the event."""
    STALE = "stale"
    """At or below the applied entity version: completed without running the agent."""
    WAITING = "waiting"
    """The event waits for a signal or a timer (suspended, or already waiting)."""
    PARKED = "parked"
    """Strict ordering: parked behind its key's dead letter or earlier parked events."""
    RETRY = "retry"
    """A transient failure: another attempt after the backoff."""
    BUSY = "busy"
    """Another worker holds a live claim, or a retry backoff runs: asked again later."""
    FENCED = "fenced"
    """A journal write was rejected: the claim had moved on."""
    LEASE_LOST = "lease_lost"
    """The claim was taken over or ran out; the handler stopped before its next step."""
    ERROR = "error"
    """The journal could not be reached (or failed); the event is tried again later."""


@dataclass(frozen=True, slots=True)
class Done:
    """The delivery is finished; acknowledge it."""

    outcome: DeliveryOutcome


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Process the same event again after ``delay_s``; later events of its key wait."""

    delay_s: float
    outcome: DeliveryOutcome = DeliveryOutcome.RETRY


Outcome = Done | RetryLater
