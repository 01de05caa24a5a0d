"""What replay puts in place of the live journal and the model: recorded answers.

:class:`ReplayJournal` is an :class:`~agentstream.journal.store.EventJournal` for one replayed
event. Its claim hands the live executor the recorded steps (recorded mode) or none (shadow
mode), and every write the executor and context make (steps, completion, failures, dead
letter) lands in memory, where the replay reads the outcome. Nothing reaches the live journal.

Answers for steps with no record at their position come from a
:class:`~agentstream.answers.RecordedAnswers`: :class:`NothingRecorded` (recorded mode: execute
nothing, so a divergent step fails the replay of that event) or :class:`JournalAnswers` (shadow
mode: match recorded steps by kind, name and request fingerprint; let model calls and plain
steps run; suppress effects).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentstream.event import Message, OutgoingRecord
from agentstream.failures import FencedError, StepNotRecorded
from agentstream.journal.records import (
    Claim,
    ClaimStatus,
    Completion,
    EventMeta,
    FailureRecord,
    ParkedRecord,
    StepKind,
    StepRecord,
)


@dataclass
class ReplayJournal:
    """An in-memory journal for one replayed event.

    Args:
        recorded: Steps handed to the executor at claim (matched by position).
    """

    recorded: tuple[StepRecord, ...] = ()
    written: dict[int, StepRecord] = field(default_factory=dict)
    completion: Completion | None = None
    failures_: list[FailureRecord] = field(default_factory=list)
    dead: tuple[str, dict[str, Any]] | None = None
    released: bool = False
    blobs: dict[str, str] = field(default_factory=dict)

    async def claim(
        self, agent: str, event_id: str, *, owner: str, lease_s: float, meta: EventMeta
    ) -> Claim:
        """Always granted, as the first attempt, with the recorded steps."""
        return Claim(ClaimStatus.CLAIMED, 1, 1, float("inf"), self.recorded)

    async def claim_many(
        self,
        agent: str,
        requests: Sequence[tuple[str, EventMeta]],
        *,
        owner: str,
        lease_s: float,
    ) -> list[Claim]:
        """Every request granted (replay claims one event per journal)."""
        return [
            await self.claim(agent, event_id, owner=owner, lease_s=lease_s, meta=meta)
            for event_id, meta in requests
        ]

    async def complete_many(
        self, agent: str, items: Sequence[tuple[str, int, Completion]]
    ) -> list[FencedError | None]:
        """Kept in memory."""
        for event_id, epoch, completion in items:
            await self.complete(agent, event_id, epoch, completion)
        return [None] * len(items)

    async def renew(
        self, agent: str, claims: Sequence[tuple[str, int]], lease_s: float
    ) -> set[str]:
        """Replay's claim is never contended: nothing is lost."""
        return set()

    async def release(
        self, agent: str, event_id: str, epoch: int, *, not_before: float = 0.0
    ) -> None:
        """A transient failure: replay does not retry; noted."""
        self.released = True

    async def write_step(self, agent: str, event_id: str, epoch: int, step: StepRecord) -> None:
        """Kept in memory."""
        self.written[step.seq] = step

    async def complete(self, agent: str, event_id: str, epoch: int, completion: Completion) -> None:
        """Kept in memory."""
        self.completion = completion

    async def record_failure(
        self, agent: str, event_id: str, epoch: int, failure: FailureRecord
    ) -> None:
        """Kept in memory."""
        self.failures_.append(failure)

    async def dead_letter(
        self,
        agent: str,
        event_id: str,
        epoch: int,
        *,
        failure_class: str,
        envelope: dict[str, Any],
        outputs: Sequence[OutgoingRecord] = (),
    ) -> int:
        """Kept in memory (nothing is published)."""
        self.dead = (failure_class, envelope)
        return 0

    async def applied_version(self, agent: str, entity: str) -> int | None:
        """Replay does not re-check entity versions (stale events are not replayed)."""
        return None

    async def steps(self, agent: str, event_id: str) -> list[StepRecord]:
        """Steps as this replay sees them: recorded ones overlaid with those written."""
        merged = {s.seq: s for s in self.recorded}
        merged.update(self.written)
        return [merged[k] for k in sorted(merged)]

    async def failures(self, agent: str, event_id: str) -> list[FailureRecord]:
        """Failures of this replay."""
        return list(self.failures_)

    async def park(self, agent: str, event_id: str, key: str, message: Message) -> bool:
        """Replay never parks."""
        return False

    async def blocked_by(self, agent: str, key: str) -> str | None:
        """Replay never blocks."""
        return None

    async def unpark(self, agent: str, parked_id: int) -> None:
        """Nothing is parked."""

    async def parked(
        self, agent: str, *, key: str | None = None, releasable: bool = False, limit: int = 1000
    ) -> list[ParkedRecord]:
        """Nothing is parked."""
        return []

    async def put_blobs(self, blobs: Mapping[str, str]) -> None:
        """Transcript parts of steps this replay writes, kept in memory."""
        for digest, body in blobs.items():
            self.blobs.setdefault(digest, body)

    async def get_blobs(self, digests: Collection[str]) -> dict[str, str]:
        """Parts this replay wrote (recorded steps reference the live journal's blobs)."""
        return {d: self.blobs[d] for d in digests if d in self.blobs}


class NothingRecorded:
    """Recorded mode: no step is answered beyond the journal, none executes."""

    def answer(self, kind: StepKind, name: str, fingerprint: str) -> StepRecord | None:
        """Never an answer."""
        return None

    def may_execute(self, kind: StepKind) -> bool:
        """Never."""
        return False

    def unanswered_effect(self, name: str) -> None:
        """An effect the journal does not have: the replay of this event fails."""
        raise StepNotRecorded(f"replay: effect {name!r} has no recorded answer; nothing executes")


class JournalAnswers:
    """Shadow mode: recorded steps answer requests that match them exactly.

    Each recorded step answers at most once, the earliest unused match first, so a candidate
    that asks the same question twice gets the two recorded answers in order.

    Args:
        recorded: The live event's steps.
    """

    def __init__(self, recorded: Sequence[StepRecord]) -> None:
        self._unused = sorted(recorded, key=lambda s: s.seq)

    def answer(self, kind: StepKind, name: str, fingerprint: str) -> StepRecord | None:
        """The earliest unused recorded step with this kind, name and fingerprint."""
        for i, step in enumerate(self._unused):
            if step.kind == kind and step.name == name and step.fingerprint == fingerprint:
                return self._unused.pop(i)
        return None

    def may_execute(self, kind: StepKind) -> bool:
        """Model calls and plain steps run; effects never do."""
        return kind != StepKind.EFFECT

    def unanswered_effect(self, name: str) -> None:
        """Suppressed: the candidate gets None and nothing executes."""
