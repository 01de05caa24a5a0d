"""Replay answering: what a replay does with a step that has no record at its position.

A live run has no answers: a step without a record executes. A replay runs the live executor
over a replay journal (see :mod:`agentstream.replay`) and hands the Context a
:class:`RecordedAnswers`. Recorded replay answers nothing and executes nothing; shadow replay
answers a step from the live journal when one with the same kind, name and request fingerprint
was recorded, lets unanswered model calls and plain steps execute, and never executes an
effect: an unanswered effect is suppressed and returns None. A wait is answered by its
recorded signal or timeout, never waited for; a timer is taken as fired.

These are the decisions; :mod:`agentstream.step_journal`, :mod:`agentstream.effects` and
:mod:`agentstream.wait_steps` write what they decide into the replay's journal.
"""

from __future__ import annotations

from typing import Any, Protocol

from agentstream.failures import StepNotRecorded
from agentstream.journal.records import StepKind, StepRecord, StepStatus

__all__ = ["RecordedAnswers", "answer_effect", "answer_step", "answer_wait", "answered_meta"]


class RecordedAnswers(Protocol):
    """Replay's source of answers for steps that have no record at their position."""

    def answer(self, kind: StepKind, name: str, fingerprint: str) -> StepRecord | None:
        """A recorded step with this request, not used before in this event, if any."""
        ...

    def may_execute(self, kind: StepKind) -> bool:
        """Whether an unanswered model call or plain step may run."""
        ...

    def unanswered_effect(self, name: str) -> None:
        """An effect has no recorded answer: raise to fail the replay, return to suppress it."""
        ...


def answer_step(
    answers: RecordedAnswers, seq: int, kind: StepKind, name: str, fp: str
) -> StepRecord | None:
    """The recorded answer of a model call or plain step; None: execute it.

    Raises:
        StepNotRecorded: No recorded answer, and this replay executes nothing.
    """
    found = answers.answer(kind, name, fp)
    if found is None and not answers.may_execute(kind):
        raise StepNotRecorded(
            f"replay: step {seq} {kind} {name!r} (fingerprint {fp[:12]}) has no recorded "
            "answer, and this replay executes nothing"
        )
    return found


def answer_effect(answers: RecordedAnswers, name: str, fp: str) -> StepRecord | None:
    """The recorded (done) effect that answers this one; None: it is suppressed, never run.

    Raises:
        StepNotRecorded: No recorded answer, and this replay fails on that (the answers'
            ``unanswered_effect`` decides).
    """
    found = answers.answer(StepKind.EFFECT, name, fp)
    if found is not None and found.status != StepStatus.DONE:
        found = None
    if found is None:
        answers.unanswered_effect(name)
    return found


def answer_wait(answers: RecordedAnswers, name: str, fp: str) -> StepRecord:
    """The recorded end of a wait (its signal or timeout); a replay never waits.

    Raises:
        StepNotRecorded: The recorded run has no ended wait for ``name``.
    """
    found = answers.answer(StepKind.WAIT, name, fp)
    if found is None or found.status != StepStatus.DONE:
        raise StepNotRecorded(f"replay: the wait for {name!r} has no recorded signal")
    return found


def answered_meta(found: StepRecord | None) -> dict[str, Any]:
    """The ``meta`` of an answered step: where its answer came from (``None``: suppressed)."""
    if found is None:
        return {"suppressed": True}
    return {"answered_from": found.seq}
