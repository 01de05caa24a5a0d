"""The event state machine: every decision the journal makes, written once for every backend.

An event moves ``pending -> claimed -> completed | dead``; a claim carries a lease and a fencing
**epoch**, bumped on every grant, so a zombie's late writes, made under an old epoch, are
rejected with :class:`~agentstream.failures.FencedError`. Every claim is an attempt (attempt
counts are durable, so crash loops end).

Dead-letter statuses: ``dead`` (open), ``redriven`` (the event was reset and re-published, not
yet completed), ``resolved`` (the redriven event completed), ``superseded`` (the redriven event
was dead-lettered again: a newer row is open), ``discarded`` (closed by an operator). A key of an
agent is **blocked** while it has a dead letter that is ``dead`` or ``redriven``; under strict
ordering, later events of a blocked key, and of a key that still has parked events, are parked.

The functions here are pure (state, epoch and lease in, outcome out); the constants name the
transitions that the backends' SQL applies. A backend reads the rows a decision needs, calls the
decision, and writes what it says, inside one transaction; it decides nothing by itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from agentstream.failures import FencedError
from agentstream.journal.records import (
    Claim,
    ClaimStatus,
    DeadLetterStatus,
    EventState,
)

__all__ = [
    "BLOCKING_STATUSES",
    "ClaimRow",
    "answer_in_order",
    "counts_delivery",
    "decide_claim",
    "decide_park",
    "fenced",
    "first_claim",
    "settle_batch",
    "sql_list",
    "vanished",
]

T = TypeVar("T")

BLOCKING_STATUSES: tuple[str, ...] = (DeadLetterStatus.DEAD, DeadLetterStatus.REDRIVEN)
"""Dead-letter statuses that hold back later events of the key under strict ordering."""

REDRIVABLE = EventState.DEAD
"""The only state a redrive resets (a completed event stays completed)."""

PRUNABLE = EventState.COMPLETED
"""The only state retention deletes (never dead, pending or claimed events)."""


def sql_list(values: Collection[str]) -> str:
    """``values`` as an SQL list of literals, ``('a', 'b')`` (values are our own constants)."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


@dataclass(frozen=True, slots=True)
class ClaimRow:
    """What a claim reads of an event that has a journal row."""

    state: EventState
    epoch: int
    lease_until: float
    attempts: int


def first_claim(until: float) -> Claim:
    """The answer to the first claim of an event the journal has never seen."""
    return Claim(ClaimStatus.CLAIMED, 1, 1, until)


def decide_claim(row: ClaimRow, *, now: float, until: float) -> Claim:
    """The answer to a claim of a known event (its steps are attached by the caller).

    Settled events are not run again; a waiting event that is not due answers ``waiting`` (its
    delivery is acknowledged; the wake-up loop resumes it); a live lease (or a retry backoff)
    makes the claimer wait;
    otherwise the claim is granted under the next epoch, as one more attempt, until ``until``.
    """
    if row.state == EventState.COMPLETED:
        return Claim(ClaimStatus.COMPLETED, row.epoch, row.attempts)
    if row.state == EventState.DEAD:
        return Claim(ClaimStatus.DEAD, row.epoch, row.attempts)
    if row.state == EventState.WAITING and row.lease_until > now:
        # a waiting event's lease_until is when it is due (see agentstream.journal.waits)
        return Claim(ClaimStatus.WAITING, row.epoch, row.attempts, row.lease_until)
    if row.lease_until > now:
        return Claim(ClaimStatus.BUSY, row.epoch, row.attempts, row.lease_until)
    return Claim(ClaimStatus.CLAIMED, row.epoch + 1, row.attempts + 1, until)


def vanished(now: float) -> Claim:
    """The answer when a row disappeared during the claim (pruned): ask again, it is new again."""
    return Claim(ClaimStatus.BUSY, 0, 0, now)


def counts_delivery(claim: Claim) -> bool:
    """Whether the answer counts a delivery on a settled row (duplicates detected).

    A grant counts one delivery itself; busy answers are not counted, since the same delivery
    asks again until the holder lets go.
    """
    return claim.status in (ClaimStatus.COMPLETED, ClaimStatus.DEAD, ClaimStatus.WAITING)


def answer_in_order(event_ids: Sequence[str], answers: Mapping[str, Claim]) -> list[Claim]:
    """Answers to a batch of claims in request order: an id repeated is granted once, then busy."""
    out: list[Claim] = []
    seen: set[str] = set()
    for event_id in event_ids:
        claim = answers[event_id]
        if event_id in seen and claim.status == ClaimStatus.CLAIMED:
            claim = Claim(ClaimStatus.BUSY, claim.epoch, claim.attempts, claim.lease_until)
        seen.add(event_id)
        out.append(claim)
    return out


def fenced(agent: str, event_id: str, epoch: int) -> FencedError:
    """The error for a write whose claim is no longer current."""
    return FencedError(f"claim on {agent}/{event_id} at epoch {epoch} is no longer current")


def settle_batch(
    agent: str, items: Sequence[tuple[str, int, T]], current: Collection[tuple[str, int]]
) -> list[FencedError | None]:
    """Which items of a completion batch take effect, in item order.

    ``current`` holds the ``(event_id, epoch)`` claims that are live. The first item of a live
    claim completes it; any other item (a stale epoch, or a repeat within the batch) is fenced.
    """
    live = set(current)
    answers: list[FencedError | None] = []
    for event_id, epoch, _ in items:
        if (event_id, epoch) in live:
            live.discard((event_id, epoch))
            answers.append(None)
        else:
            answers.append(fenced(agent, event_id, epoch))
    return answers


def decide_park(
    *, event_id: str, already_parked: bool, blocker: str | None, key_has_parked: bool
) -> bool:
    """Whether an event is parked behind its key (strict ordering).

    Parked again (a redelivery) stays parked; the blocking event itself (a redrive) runs; any
    other event of a blocked key, or of a key that still has parked events, is parked.
    """
    if already_parked:
        return True
    if blocker == event_id:
        return False
    return blocker is not None or key_has_parked
