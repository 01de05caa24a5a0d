"""Agents that wait: ``ctx.wait_for(name)`` for a signal, ``ctx.sleep(seconds)`` for a timer.

Both are journaled steps. Reaching one that is not satisfied **suspends** the event: the
handler stops (an internal :class:`Suspended` unwinds it), and the executor writes the wait in
the same transaction that releases the claim (see :mod:`agentstream.journal.waits`). The event
then costs one journal row: no task, no lease, no memory, and its offset moves on. When its
signal arrives or its timer is due, any worker's wake-up loop claims it and runs the handler
again; the steps before the wait replay from the journal, and the wait returns the recorded
signal (or times out) as every later replay will.

Signals are sent with ``agentstream signal``, :meth:`agentstream.App.signal` or a signal
source (:func:`agentstream.signal_sources.signal_source`), all through
:func:`agentstream.journal.signals.send_signal`; each is applied once per signal id.

Waits in one event happen one at a time (a handler that awaits two waits concurrently
suspends at the first one it reaches).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

import pydantic

from agentstream.answers import answer_wait
from agentstream.codec import fingerprint
from agentstream.failures import AgentStreamError
from agentstream.journal.records import StepKind, StepRecord, StepStatus
from agentstream.journal.waits import WAIT_SIGNAL, WAIT_TIMER, Wait, WaitJournal
from agentstream.middleware import Middleware, WaitInput
from agentstream.step_journal import StepJournal

T = TypeVar("T")

__all__ = ["Suspended", "WaitTimeout", "sleep", "wait_for"]

MISSING: Any = object()
"""No default: a timed-out ``wait_for`` raises :class:`WaitTimeout`."""


class WaitTimeout(AgentStreamError):
    """``ctx.wait_for`` reached its timeout before the signal arrived.

    Attributes:
        name: The signal waited for.
        deadline: When the wait ended, wall-clock seconds.
    """

    def __init__(self, name: str, deadline: float) -> None:
        super().__init__(f"no signal {name!r} arrived before the timeout")
        self.name = name
        self.deadline = deadline


class Suspended(BaseException):
    """Unwinds a handler that reached an unsatisfied wait; the executor suspends the event.

    A BaseException, so that a handler's ``except Exception`` does not swallow it.
    """

    def __init__(self, wait: Wait, step: StepRecord) -> None:
        super().__init__(f"waiting for {wait.kind} {wait.name!r}")
        self.wait = wait
        self.step = step


def _journal(steps: StepJournal) -> WaitJournal:
    store = steps.store
    if not isinstance(store, WaitJournal):
        raise AgentStreamError(f"the journal {store!r} cannot suspend events")
    return store


@overload
async def wait_for(
    steps: StepJournal,
    name: str,
    *,
    timeout: float | None = ...,  # noqa: ASYNC109
    schema: None = ...,
    default: Any = ...,
) -> Any: ...


@overload
async def wait_for(
    steps: StepJournal,
    name: str,
    *,
    timeout: float | None = ...,  # noqa: ASYNC109
    schema: type[T],
    default: Any = ...,
) -> T: ...


async def wait_for(
    steps: StepJournal,
    name: str,
    *,
    timeout: float | None = None,  # noqa: ASYNC109
    schema: Any = None,
    default: Any = MISSING,
) -> Any:
    """Wait for the signal ``name`` sent to this event (see :meth:`Context.wait_for`)."""
    request = {"signal": name, "timeout_s": timeout}
    # The timeout is not part of the fingerprint: a deploy that changes it must not make the
    # events already waiting non-deterministic (their recorded deadline stands).
    fp = fingerprint(str(StepKind.WAIT), name, {"signal": name})
    seq, rec = steps.place(StepKind.WAIT, name, fp, None)
    validate = _validator(schema)
    rec = await steps.recorded(seq, StepKind.WAIT, name, fp, rec, doing=f"waits for {name!r}")
    if rec is not None and rec.status == StepStatus.DONE:
        return _answer(name, rec.result, validate, default)
    if steps.answers is not None:  # replay: a wait is answered from the record, never waited
        found = answer_wait(steps.answers, name, fp)
        await steps.write(_done(steps, seq, name, fp, request, found.result, found.started_at))
        return _answer(name, found.result, validate, default)
    now = steps.clock()
    since = rec.started_at if rec is not None else now
    deadline = _deadline(rec, since, timeout)
    step = steps.keyed(_done(steps, seq, name, fp, request, None, since))

    def check(data: Any) -> str | None:
        try:
            validate(data)
        except pydantic.ValidationError as exc:
            return f"does not match {getattr(schema, '__name__', schema)}: {exc}"
        return None

    journal = _journal(steps)
    signal = await journal.take_signal(steps.agent, steps.identity, steps.epoch, name, step, check)
    if signal is not None:
        await _ended(steps, WAIT_SIGNAL, name, "signalled", since)
        return validate(signal.data)
    if deadline is not None and now >= deadline:
        result = {"timeout": True, "deadline": deadline}
        await steps.write(_done(steps, seq, name, fp, request, result, since))
        await _ended(steps, WAIT_SIGNAL, name, "timed_out", since)
        return _answer(name, result, validate, default)
    started = _done(steps, seq, name, fp, request, None, since)
    started.status, started.finished_at = StepStatus.STARTED, None
    started.meta = {**step.meta, "deadline": deadline}
    raise Suspended(Wait(WAIT_SIGNAL, name, seq, deadline, since), started)


async def sleep(steps: StepJournal, seconds: float) -> None:
    """Sleep durably for ``seconds`` (see :meth:`Context.sleep`)."""
    request = {"sleep_s": seconds}
    fp = fingerprint(str(StepKind.SLEEP), "sleep", None)  # the recorded deadline stands
    seq, rec = steps.place(StepKind.SLEEP, "sleep", fp, None)
    rec = await steps.recorded(seq, StepKind.SLEEP, "sleep", fp, rec, doing=f"sleeps {seconds}s")
    if rec is not None and rec.status == StepStatus.DONE:
        return
    if steps.answers is not None:  # replay: a timer is taken as fired
        await steps.write(_done(steps, seq, "sleep", fp, request, {"fired": True}, steps.clock()))
        return
    now = steps.clock()
    since = rec.started_at if rec is not None else now
    deadline = _deadline(rec, since, seconds)
    assert deadline is not None
    if now >= deadline:
        result = {"fired": True, "deadline": deadline}
        await steps.write(_done(steps, seq, "sleep", fp, request, result, since))
        await _ended(steps, WAIT_TIMER, "sleep", "fired", since)
        return
    started = _done(steps, seq, "sleep", fp, request, None, since)
    started.status, started.finished_at = StepStatus.STARTED, None
    started.meta = {"deadline": deadline}
    raise Suspended(Wait(WAIT_TIMER, "sleep", seq, deadline, since), steps.keyed(started))


async def _ended(steps: StepJournal, kind: str, name: str, phase: str, since: float) -> None:
    if steps.mw.wants(Middleware.on_wait):
        waited = max(0.0, steps.clock() - since)
        await steps.mw.on_wait(WaitInput(steps.agent, steps.event, kind, name, phase, waited))


def _deadline(rec: StepRecord | None, since: float, timeout: float | None) -> float | None:
    """The wait's deadline: the recorded one on resume, else from its start and timeout."""
    if rec is not None and "deadline" in rec.meta:
        value = rec.meta["deadline"]
        return None if value is None else float(value)
    return None if timeout is None else since + timeout


def _done(
    steps: StepJournal, seq: int, name: str, fp: str, request: Any, result: Any, since: float
) -> StepRecord:
    kind = StepKind.SLEEP if "sleep_s" in request else StepKind.WAIT
    return steps.done(seq, kind, name, fp, request, result, started_at=since)


def _validator(schema: Any) -> Callable[[Any], Any]:
    if schema is None:
        return lambda data: data
    adapter = pydantic.TypeAdapter(schema)
    return cast(Callable[[Any], Any], adapter.validate_python)


def _answer(name: str, result: Any, validate: Callable[[Any], Any], default: Any) -> Any:
    if isinstance(result, dict) and result.get("timeout"):
        if default is not MISSING:
            return default
        raise WaitTimeout(name, float(result.get("deadline") or 0.0))
    return validate(result.get("data") if isinstance(result, dict) else None)
