"""Effects: side effects performed exactly once per event, through the intent ledger.

The intent is recorded (``started``) before the call and the result (``done``) after. An intent
found ``started`` on resume means the worker died between the call and its record; it is
reconciled through ``reconcile(idempotency_key)``, retried with the same key when declared
``idempotent``, or else marked ``unknown`` and the event dead-lettered.

The effect boundary is guarded: before an effect's function is called, the claim is confirmed
in the journal (fenced by epoch) with at least the effect's ``timeout`` left, extending the
lease to cover it; the intent records that deadline (``meta["deadline"]``). A worker that takes
over an intent left ``started`` under an earlier epoch waits until that deadline has passed
before it reconciles or retries, so the earlier owner's call has finished or been given up;
a call that raised is known to have ended (the intent records ``meta["ended"]``), so its
retry reconciles at once.

A replay never calls an effect: it is answered from the recorded run or suppressed
(:func:`agentstream.answers.answer_effect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agentstream.answers import answer_effect, answered_meta
from agentstream.codec import fingerprint, to_jsonable
from agentstream.failures import EffectOutcomeUnknown, EffectTimeoutError, FencedError
from agentstream.journal.records import StepKind, StepRecord, StepStatus
from agentstream.step_journal import StepJournal
from agentstream.usercode import UserCode, is_async_callable

__all__ = ["DEFAULT_EFFECT_TIMEOUT_S", "Effects"]

DEFAULT_EFFECT_TIMEOUT_S = 30.0
"""How long an effect may run (``ctx.effect(..., timeout=...)``) unless the agent says."""

_LEASE_SLACK_S = 1.0
"""Lease kept beyond an effect's deadline, so the deadline passes before the claim can move."""


class Effects:
    """The intent ledger of one event (one per Context).

    Args:
        steps: The event's journaled steps.
        user_code: Where sync user callables run.
    """

    def __init__(self, steps: StepJournal, user_code: UserCode) -> None:
        self._steps = steps
        self._user = user_code

    async def run(
        self,
        name: str,
        fn: Callable[..., Any | Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        idempotency_key: str,
        reconcile: Callable[[str], Any] | None,
        idempotent: bool,
        key: str | None,
        timeout: float,  # noqa: ASYNC109 - the effect's deadline
    ) -> tuple[bool, Any]:
        """Perform the effect once (see :meth:`agentstream.Context.effect`).

        Returns:
            Whether there is a result (False: a replay suppressed the effect), and the result
            as JSON.
        """
        steps = self._steps
        request = {"args": to_jsonable(args), "kwargs": to_jsonable(kwargs)}
        fp = fingerprint("effect", name, request)
        seq, rec = steps.place(StepKind.EFFECT, name, fp, key)
        started = time.monotonic()
        if rec is None and steps.answers is not None:
            return await self._answered(seq, name, fp, request, idempotency_key, started)
        rec = await steps.recorded(seq, StepKind.EFFECT, name, fp, rec)
        replayed = False
        result: Any
        if rec is not None and rec.status == StepStatus.DONE:
            result, replayed = rec.result, True
        else:
            call = functools.partial(self._call, name, fn, args, kwargs)
            result, reconciled = await self._perform(
                seq, name, fp, request, rec, call, idempotency_key, reconcile, idempotent, timeout
            )
            done = steps.done(
                seq,
                StepKind.EFFECT,
                name,
                fp,
                request,
                result,
                started_at=rec.started_at if rec is not None else steps.clock(),
                meta={"reconciled": reconciled} if reconciled else {},
                idempotency_key=idempotency_key,
            )
            await steps.keep(done, None)  # the effect happened: its record must not be lost
        await steps.after_step(seq, StepKind.EFFECT, name, replayed, started)
        return True, result

    async def _perform(
        self,
        seq: int,
        name: str,
        fp: str,
        request: Any,
        rec: StepRecord | None,
        call: Callable[[float], Awaitable[Any]],
        idem_key: str,
        reconcile: Callable[[str], Any] | None,
        idempotent: bool,
        timeout: float,  # noqa: ASYNC109 - the effect's deadline
    ) -> tuple[Any, bool]:
        """Reconcile an unfinished intent, or record the intent and ``call`` the effect.

        ``call`` is given the effect's deadline.

        Returns:
            The result as JSON, and whether it was found by ``reconcile``.
        """
        steps = self._steps
        if rec is not None and rec.status == StepStatus.UNKNOWN:
            raise EffectOutcomeUnknown(
                f"effect {name!r} (key {idem_key}) has an unknown outcome from an earlier "
                "attempt; resolve it and redrive the event"
            )
        if rec is not None and rec.status == StepStatus.STARTED:
            await self._wait_for_earlier_owner(rec)
            if reconcile is not None:
                steps.check_lease()
                found = await self._user.call(reconcile, idem_key)
                if found is not None:
                    return to_jsonable(found), True
            elif not idempotent:
                rec.status = StepStatus.UNKNOWN
                await steps.write(rec)
                raise EffectOutcomeUnknown(
                    f"effect {name!r} (key {idem_key}) was started by an earlier attempt and "
                    "its outcome was never recorded; without reconcile= or idempotent=True "
                    "it cannot be repeated safely"
                )
        deadline = await self._guard(timeout)
        intent = StepRecord(
            seq=seq,
            kind=StepKind.EFFECT,
            name=name,
            fingerprint=fp,
            status=StepStatus.STARTED,
            request=request,
            idempotency_key=idem_key,
            meta={"deadline": deadline},
            started_at=steps.clock(),
        )
        await steps.write(intent)
        try:
            return to_jsonable(await call(deadline)), False
        except Exception:
            await self._ended(intent)
            raise

    async def _ended(self, intent: StepRecord) -> None:
        """Record that an effect call raised, so it is known to be no longer running.

        The next attempt then reconciles at once instead of waiting out the deadline. Best
        effort: if this write fails, the next attempt waits, which is only slower.
        """
        intent.meta = {**intent.meta, "ended": True}
        with contextlib.suppress(Exception):
            await self._steps.write(intent)

    async def _answered(
        self, seq: int, name: str, fp: str, request: Any, idem_key: str, started: float
    ) -> tuple[bool, Any]:
        """Replay: answer an effect from the recorded journal, or suppress it."""
        steps = self._steps
        assert steps.answers is not None
        found = answer_effect(steps.answers, name, fp)
        record = steps.done(
            seq,
            StepKind.EFFECT,
            name,
            fp,
            request,
            None if found is None else found.result,
            started_at=steps.clock(),
            meta=answered_meta(found),
            idempotency_key=idem_key,
        )
        await steps.write(record)
        await steps.after_step(seq, StepKind.EFFECT, name, True, started)
        return found is not None, record.result

    async def _wait_for_earlier_owner(self, rec: StepRecord) -> None:
        """Wait out the deadline of an intent another (earlier) claim left ``started``."""
        steps = self._steps
        meta = rec.meta if isinstance(rec.meta, dict) else {}
        deadline = meta.get("deadline")
        if rec.epoch >= steps.epoch or not isinstance(deadline, int | float) or meta.get("ended"):
            return
        if float(deadline) > steps.clock():
            await self._hold_claim(float(deadline) - steps.clock())
        while (left := float(deadline) - steps.clock()) > 0:
            steps.check_lease()
            await asyncio.sleep(min(left, 0.5))

    async def _guard(self, seconds: float) -> float:
        """Confirm the claim in the journal with ``seconds`` left; return the effect's deadline.

        The confirmation is a fenced lease extension: it fails if another worker's claim
        replaced ours, and afterwards nobody can claim the event before the deadline has passed.
        """
        self._steps.check_lease()
        deadline = self._steps.clock() + seconds
        await self._hold_claim(seconds)
        return deadline

    async def _hold_claim(self, seconds: float) -> None:
        """Extend the claim in the journal (fenced by epoch) to last ``seconds`` more."""
        steps = self._steps
        if steps.lease is None:
            return
        until = steps.clock() + seconds + _LEASE_SLACK_S
        lost = await steps.store.renew(
            steps.agent, [(steps.identity, steps.epoch)], seconds + _LEASE_SLACK_S
        )
        if lost:
            raise FencedError(
                f"claim on {steps.agent}/{steps.identity} at epoch {steps.epoch} is no "
                "longer current; the effect was not called"
            )
        steps.lease.until = max(steps.lease.until, until)

    async def _call(
        self,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        deadline: float,
    ) -> Any:
        """Call an effect; an async one is cancelled at its deadline, a thread cannot be."""
        call = self._user.call(fn, *args, **kwargs)
        if not is_async_callable(fn):
            return await call
        try:
            return await asyncio.wait_for(call, timeout=max(0.0, deadline - self._steps.clock()))
        except TimeoutError:
            raise EffectTimeoutError(
                f"effect {name!r} was still running at its deadline and was cancelled; its "
                "outcome is unknown and will be reconciled"
            ) from None
