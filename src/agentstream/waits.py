"""Agents that wait: ``ctx.wait_for(name)`` for a signal, ``ctx.sleep(seconds)`` for a timer.

Both are journaled steps. Reaching one that is not satisfied **suspends** the event: the
handler stops (an internal :class:`Suspended` unwinds it), and the executor writes the wait in
the same transaction that releases the claim (see :mod:`agentstream.journal.waits`). The event
then costs one journal row: no task, no lease, no memory, and its offset moves on. When its
signal arrives or its timer is due, any worker's wake-up loop claims it and runs the handler
again; the steps before the wait replay from the journal, and the wait returns the recorded
signal (or times out) as every later replay will.

Signals are sent with ``agentstream signal``, :meth:`agentstream.App.signal` or a signal
source (:func:`agentstream.signals.signal_source`), all through
:func:`agentstream.journal.signals.send_signal`; each is applied once per signal id.

Waits in one event happen one at a time (a handler that awaits two waits concurrently
suspends at the first one it reaches).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import pydantic

from agentstream.codec import fingerprint
from agentstream.failures import AgentStreamError, StepNotRecorded
from agentstream.journal.records import StepKind, StepRecord, StepStatus
from agentstream.journal.waits import WAIT_SIGNAL, WAIT_TIMER, Wait, WaitJournal
from agentstream.middleware import Middleware, WaitInput

if TYPE_CHECKING:
    from agentstream.context import Context

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


def _journal(ctx: Context) -> WaitJournal:
    store = ctx._store
    if not isinstance(store, WaitJournal):
        raise AgentStreamError(f"the journal {store!r} cannot suspend events")
    return store


@overload
async def wait_for(
    ctx: Context,
    name: str,
    *,
    timeout: float | None = ...,  # noqa: ASYNC109
    schema: None = ...,
    default: Any = ...,
) -> Any: ...


@overload
async def wait_for(
    ctx: Context,
    name: str,
    *,
    timeout: float | None = ...,  # noqa: ASYNC109
    schema: type[T],
    default: Any = ...,
) -> T: ...


async def wait_for(
    ctx: Context,
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
    seq, rec = ctx._place(StepKind.WAIT, name, fp, None)
    validate = _validator(schema)
    if rec is not None and (rec.kind != StepKind.WAIT or rec.name != name or rec.fingerprint != fp):
        raise StepNotRecorded(
            f"step {seq}: the handler now waits for {name!r} where the journal recorded "
            f"{rec.kind} {rec.name!r}; a wait is never re-decided"
        )
    if rec is not None and rec.status == StepStatus.DONE:
        ctx.steps_replayed += 1
        return _answer(name, rec.result, validate, default)
    if ctx._answers is not None:  # replay: a wait is answered from the record, never waited
        found = ctx._answers.answer(StepKind.WAIT, name, fp)
        if found is None or found.status != StepStatus.DONE:
            raise StepNotRecorded(f"replay: the wait for {name!r} has no recorded signal")
        await ctx._write(_done(seq, name, fp, request, found.result, found.started_at, ctx))
        ctx.steps_replayed += 1
        return _answer(name, found.result, validate, default)
    now = ctx._clock()
    since = rec.started_at if rec is not None else now
    deadline = _deadline(rec, since, timeout)
    step = _done(seq, name, fp, request, None, since, ctx)
    step = _keyed(ctx, step)

    def check(data: Any) -> str | None:
        try:
            validate(data)
        except pydantic.ValidationError as exc:
            return f"does not match {getattr(schema, '__name__', schema)}: {exc}"
        return None

    signal = await _journal(ctx).take_signal(ctx.agent, ctx.identity, ctx._epoch, name, step, check)
    if signal is not None:
        await _ended(ctx, WAIT_SIGNAL, name, "signalled", since)
        return validate(signal.data)
    if deadline is not None and now >= deadline:
        result = {"timeout": True, "deadline": deadline}
        await ctx._write(_done(seq, name, fp, request, result, since, ctx))
        await _ended(ctx, WAIT_SIGNAL, name, "timed_out", since)
        return _answer(name, result, validate, default)
    started = _done(seq, name, fp, request, None, since, ctx)
    started.status, started.finished_at = StepStatus.STARTED, None
    started.meta = {**step.meta, "deadline": deadline}
    raise Suspended(Wait(WAIT_SIGNAL, name, seq, deadline, since), started)


async def sleep(ctx: Context, seconds: float) -> None:
    """Sleep durably for ``seconds`` (see :meth:`Context.sleep`)."""
    request = {"sleep_s": seconds}
    fp = fingerprint(str(StepKind.SLEEP), "sleep", None)  # the recorded deadline stands
    seq, rec = ctx._place(StepKind.SLEEP, "sleep", fp, None)
    if rec is not None and (rec.kind != StepKind.SLEEP or rec.fingerprint != fp):
        raise StepNotRecorded(
            f"step {seq}: the handler now sleeps {seconds}s where the journal recorded "
            f"{rec.kind} {rec.name!r}"
        )
    if rec is not None and rec.status == StepStatus.DONE:
        ctx.steps_replayed += 1
        return
    if ctx._answers is not None:  # replay: a timer is taken as fired
        await ctx._write(_done(seq, "sleep", fp, request, {"fired": True}, ctx._clock(), ctx))
        return
    now = ctx._clock()
    since = rec.started_at if rec is not None else now
    deadline = _deadline(rec, since, seconds)
    assert deadline is not None
    if now >= deadline:
        result = {"fired": True, "deadline": deadline}
        await ctx._write(_done(seq, "sleep", fp, request, result, since, ctx))
        await _ended(ctx, WAIT_TIMER, "sleep", "fired", since)
        return
    started = _done(seq, "sleep", fp, request, None, since, ctx)
    started.status, started.finished_at = StepStatus.STARTED, None
    started.meta = {"deadline": deadline}
    raise Suspended(Wait(WAIT_TIMER, "sleep", seq, deadline, since), _keyed(ctx, started))


async def _ended(ctx: Context, kind: str, name: str, phase: str, since: float) -> None:
    if ctx._mw.wants(Middleware.on_wait):
        waited = max(0.0, ctx._clock() - since)
        await ctx._mw.on_wait(WaitInput(ctx.agent, ctx.event, kind, name, phase, waited))


def _deadline(rec: StepRecord | None, since: float, timeout: float | None) -> float | None:
    """The wait's deadline: the recorded one on resume, else from its start and timeout."""
    if rec is not None and "deadline" in rec.meta:
        value = rec.meta["deadline"]
        return None if value is None else float(value)
    return None if timeout is None else since + timeout


def _done(
    seq: int, name: str, fp: str, request: Any, result: Any, since: float, ctx: Context
) -> StepRecord:
    kind = StepKind.SLEEP if "sleep_s" in request else StepKind.WAIT
    return StepRecord(
        seq=seq,
        kind=kind,
        name=name,
        fingerprint=fp,
        status=StepStatus.DONE,
        request=request,
        result=result,
        started_at=since,
        finished_at=ctx._clock(),
    )


def _keyed(ctx: Context, step: StepRecord) -> StepRecord:
    """The step with its key in ``meta`` when its position does not give it."""
    from agentstream.steps import STEP_KEY

    key = ctx._steps.key_to_store(step.seq, step.name)
    if key is not None:
        step.meta = {**step.meta, STEP_KEY: key}
    return step


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
