"""Redrive and discard of dead letters.

A redrive sends a dead event through the normal gates again. In one journal transaction the
event is reset (state ``pending``, attempt count zero; mode ``fresh`` also forgets its recorded
steps), its dead letter becomes ``redriven``, and the original message, byte for byte (a
tombstone as a tombstone), is queued in the outbox for its source topic with an
``agentstream-identity`` header, so the identity survives even when it came from source
coordinates. The outbox relay (of any running worker, or
of the command itself) publishes it; a worker claims and runs it like any delivery.

Why this is safe:

* Only a ``dead`` event is reset, atomically, so redriving a completed event, or redriving twice
  concurrently, changes nothing the second time and publishes nothing.
* A live duplicate of the event racing the redrive meets the same claim: one delivery wins the
  claim and runs, the other finds it busy, then completed, and does nothing. Effects keep their
  idempotency keys (derived from the identity, which is unchanged).
* Under strict ordering the key stays blocked until the redriven event completes; parked events
  of the key are then resumed in order (see :mod:`agentstream.runtime.worker`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from agentstream.event import IDENTITY_OVERRIDE_HEADER, OutgoingRecord
from agentstream.journal.records import DeadLetterRecord, DeadLetterStatus, RedriveMode
from agentstream.journal.store import Store


@dataclass(frozen=True, slots=True)
class RedriveResult:
    """What happened to one dead letter.

    Attributes:
        dead_letter_id: The dead letter.
        agent: Its agent.
        event_id: Its event.
        done: Whether the event was reset and its message queued for re-publication.
        reason: Why not, when it was not.
    """

    dead_letter_id: int
    agent: str
    event_id: str
    done: bool
    reason: str = ""


def republish_record(letter: DeadLetterRecord) -> OutgoingRecord:
    """The original message of a dead letter, addressed to its source, keeping its identity."""
    env = letter.envelope
    original = env["original"]
    headers = tuple(
        (str(k), base64.b64decode(v))
        for k, v in original.get("headers", [])
        if k != IDENTITY_OVERRIDE_HEADER
    )
    key_b64, value_b64 = original.get("key_b64"), original["value_b64"]
    return OutgoingRecord(
        topic=env["source"]["topic"],
        key=None if key_b64 is None else base64.b64decode(key_b64),
        value=None if value_b64 is None else base64.b64decode(value_b64),  # None: a tombstone
        headers=(*headers, (IDENTITY_OVERRIDE_HEADER, letter.event_id.encode())),
        dedupe_id=f"redrive:{letter.agent}:{letter.event_id}:{letter.id}",
    )


async def redrive(
    store: Store, letters: Sequence[DeadLetterRecord], *, mode: RedriveMode
) -> list[RedriveResult]:
    """Redrive dead letters (see the module docstring); closed ones are reported, not touched."""
    results: list[RedriveResult] = []
    for letter in letters:
        if letter.status != DeadLetterStatus.DEAD:
            results.append(
                RedriveResult(
                    letter.id, letter.agent, letter.event_id, False, f"dead letter {letter.status}"
                )
            )
            continue
        done = await store.redrive(
            letter.agent, letter.event_id, mode=mode, republish=[republish_record(letter)]
        )
        reason = "" if done else "the event is no longer dead"
        results.append(RedriveResult(letter.id, letter.agent, letter.event_id, done, reason))
    return results


async def discard(store: Store, letters: Sequence[DeadLetterRecord]) -> list[RedriveResult]:
    """Close dead letters for good; under strict ordering this releases their keys."""
    results: list[RedriveResult] = []
    for letter in letters:
        done = await store.discard(letter.agent, letter.event_id)
        reason = "" if done else f"dead letter {letter.status}"
        results.append(RedriveResult(letter.id, letter.agent, letter.event_id, done, reason))
    return results
