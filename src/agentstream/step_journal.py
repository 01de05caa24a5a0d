"""One event's journaled steps: where a call goes, what answers it, how it is recorded.

Every ``ctx.llm(...)``, ``ctx.step(...)``, ``ctx.effect(...)``, wait and sleep is a journaled step
of ``(agent, event identity)`` identified by a stable key (see :mod:`agentstream.steps`). A
:class:`StepJournal` is that event's view of its steps, one per Context:

1. :meth:`StepJournal.place` finds the recorded step at the call's key, if any;
2. :meth:`StepJournal.recorded` checks it against the call (kind, name, request fingerprint),
   the one mismatch path of every step kind: a difference is reported and the agent's
   non-determinism policy decides (a wait is never re-decided);
3. a step without a record is answered by a replay (:mod:`agentstream.answers`) or executed;
4. :meth:`StepJournal.write` records it, fenced by the claim's epoch; a result in hand that
   must not be lost (a paid model answer, an effect that happened) rides out a journal outage
   (:meth:`StepJournal.keep`).

Under a worker's lease, no journaled step starts once the claim is lost or about to run out
(``LeaseLostError``, :meth:`StepJournal.check_lease`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from agentstream.agent import NonDeterminismPolicy
from agentstream.answers import RecordedAnswers, answer_step
from agentstream.codec import fingerprint, to_jsonable
from agentstream.event import Event
from agentstream.failures import NonDeterminismError, StepNotRecorded
from agentstream.journal.outage import OutageLog, is_journal_outage
from agentstream.journal.records import StepKind, StepRecord, StepStatus
from agentstream.middleware import Middleware, MiddlewareStack, NonDeterminismInput, StepOutput
from agentstream.steps import STEP_KEY, StepIndex

if TYPE_CHECKING:
    from agentstream.journal.store import EventJournal

__all__ = ["ClaimLease", "Meta", "StepJournal"]

_log = logging.getLogger("agentstream.context")

T = TypeVar("T")

Meta = dict[str, Any] | Callable[[Any], dict[str, Any]]
"""A step's ``meta``, or how to make it from the step's result."""


class ClaimLease(Protocol):
    """The claim's lease as the handler's steps see it (the worker's lease keeper renews it)."""

    until: float
    """Wall-clock end of the lease the journal last confirmed."""

    def check(self) -> None:
        """Raise ``LeaseLostError`` if no new journaled step may start under this lease."""
        ...

    async def bound(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()``, cancelled if the lease is lost or runs out before it returns."""
        ...


class StepJournal:
    """The journaled steps of one event under one claim.

    Args:
        agent: The agent's name.
        event: The event.
        store: The journal.
        epoch: The claim's fencing epoch (every write carries it).
        recorded: The event's recorded steps.
        middleware: Middleware stack (``after_step``, ``on_nondeterminism``).
        policy: The agent's non-determinism policy.
        clock: Wall-clock seconds.
        answers: Replay only: where steps without a record are answered.
        lease: The claim's lease, under a worker (None: no lease to watch).
        journal_outage: Logs a journal outage once per state change.

    Attributes:
        mismatches: Steps whose request differed from the recorded one, for the executor to
            journal.
        llm_calls_replayed: Model calls answered from the journal.
    """

    def __init__(
        self,
        *,
        agent: str,
        event: Event,
        store: EventJournal,
        epoch: int,
        recorded: tuple[StepRecord, ...],
        middleware: MiddlewareStack,
        policy: NonDeterminismPolicy,
        clock: Callable[[], float] = time.time,
        answers: RecordedAnswers | None = None,
        lease: ClaimLease | None = None,
        journal_outage: OutageLog | None = None,
    ) -> None:
        self.agent = agent
        self.event = event
        self.store = store
        self.epoch = epoch
        self.mw = middleware
        self.policy = policy
        self.clock = clock
        self.answers = answers
        self.lease = lease
        self._outage = journal_outage or OutageLog("journal", _log)
        self._index = StepIndex(recorded)
        self.mismatches: list[dict[str, Any]] = []
        self.llm_calls_replayed = 0

    @property
    def identity(self) -> str:
        """The event's identity."""
        return self.event.identity

    def place(
        self, kind: StepKind, name: str, fp: str, key: str | None
    ) -> tuple[int, StepRecord | None]:
        """The call's position and the recorded step at its key, if any."""
        placed = self._index.place(kind, name, fp, key)
        return placed.seq, placed.record

    async def recorded(
        self,
        seq: int,
        kind: StepKind,
        name: str,
        fp: str,
        rec: StepRecord | None,
        *,
        doing: str = "",
    ) -> StepRecord | None:
        """The recorded step that answers this call; None: the call runs (again).

        The one mismatch path of every step kind. A record of the same kind, name and request
        fingerprint answers the call. Any other record is a mismatch: a wait or a sleep is
        never re-decided (``StepNotRecorded``; ``doing`` says what the handler does now).
        Any other step is reported (``mismatches``, the ``on_nondeterminism`` hook) and the
        agent's policy decides: ``use_recorded`` answers with the recorded result when it is
        done, ``rerun`` runs the call again, ``dead_letter`` raises ``NonDeterminismError``.
        An effect is never re-run on a changed request: only a done record under
        ``use_recorded`` answers it, anything else raises.
        """
        if rec is None or (rec.kind == kind and rec.name == name and rec.fingerprint == fp):
            return rec
        if kind in (StepKind.WAIT, StepKind.SLEEP):
            never = "; a wait is never re-decided" if kind == StepKind.WAIT else ""
            raise StepNotRecorded(
                f"step {seq}: the handler now {doing} where the journal recorded "
                f"{rec.kind} {rec.name!r}{never}"
            )
        policy = await self._report_mismatch(seq, name, rec, fp)
        if policy == NonDeterminismPolicy.USE_RECORDED and rec.status == StepStatus.DONE:
            return rec
        if kind == StepKind.EFFECT:
            raise NonDeterminismError(
                f"effect {name!r} at step {seq} differs from the recorded "
                f"{rec.kind} {rec.name!r}; an effect is never re-run on a changed request",
                seq=seq,
                recorded_fingerprint=rec.fingerprint,
                new_fingerprint=fp,
            )
        if policy in (NonDeterminismPolicy.USE_RECORDED, NonDeterminismPolicy.RERUN):
            return None
        raise NonDeterminismError(
            f"step {seq} {kind} {name!r}: request fingerprint {fp[:12]} differs from "
            f"the recorded {rec.kind} {rec.name!r} ({rec.fingerprint[:12]})",
            seq=seq,
            recorded_fingerprint=rec.fingerprint,
            new_fingerprint=fp,
        )

    async def run(
        self,
        kind: StepKind,
        name: str,
        request: Any,
        execute: Callable[[int], Awaitable[Any]],
        *,
        meta: Meta,
        fp: str | None = None,
        blobs: dict[str, str] | None = None,
        key: str | None = None,
    ) -> Any:
        """A model call or plain step: the recorded result, a replay's answer, or ``execute``.

        Args:
            kind: ``llm`` or ``step``.
            name: The step's name.
            request: What the call was asked (JSON-able; journaled).
            execute: Runs the call, given its position; its result must be JSON-able.
            meta: The record's ``meta``, or how to make it from the result.
            fp: The request fingerprint (default: over kind, name and request).
            blobs: Content-addressed parts of the request, stored before the step.
            key: The call's explicit key (default: its occurrence of ``name``).

        Returns:
            The result as JSON (recorded, answered or just executed).
        """
        fp = fp or fingerprint(str(kind), name, request)
        seq, rec = self.place(kind, name, fp, key)
        started = time.monotonic()
        if rec is None and self.answers is not None:
            return await self._answered(seq, kind, name, request, fp, meta, started, execute, blobs)
        rec = await self.recorded(seq, kind, name, fp, rec)
        if rec is not None and rec.status == StepStatus.DONE:
            self.llm_calls_replayed += kind == StepKind.LLM
            await self.after_step(seq, kind, name, True, started)
            return rec.result
        self.check_lease()
        at = self.clock()
        result = to_jsonable(await execute(seq))
        step_meta = meta(result) if callable(meta) else meta
        record = self.done(seq, kind, name, fp, request, result, started_at=at, meta=step_meta)
        await self.keep(record, blobs)
        await self.after_step(seq, kind, name, False, started)
        return result

    def done(
        self,
        seq: int,
        kind: StepKind,
        name: str,
        fp: str,
        request: Any,
        result: Any,
        *,
        started_at: float,
        meta: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> StepRecord:
        """The record of a step ``done`` now with ``result``."""
        return StepRecord(
            seq=seq,
            kind=kind,
            name=name,
            fingerprint=fp,
            status=StepStatus.DONE,
            request=request,
            result=result,
            idempotency_key=idempotency_key,
            meta={} if meta is None else meta,
            started_at=started_at,
            finished_at=self.clock(),
        )

    def check_lease(self) -> None:
        """Raise ``LeaseLostError`` if no new step may start under the claim's lease."""
        if self.lease is not None:
            self.lease.check()

    def keyed(self, record: StepRecord) -> StepRecord:
        """The record with its key in ``meta`` when its position does not give it."""
        key = self._index.key_to_store(record.seq, record.name)
        if key is not None and record.meta.get(STEP_KEY) != key:
            record.meta = {**record.meta, STEP_KEY: key}
        return record

    async def write(self, record: StepRecord) -> None:
        """Journal a step (fenced by the claim's epoch), with its key in ``meta``."""
        await self.store.write_step(self.agent, self.identity, self.epoch, self.keyed(record))

    async def keep(self, record: StepRecord, blobs: dict[str, str] | None) -> None:
        """Journal a result in hand (a model answer that was paid for), riding out an outage.

        While the journal is down the write is tried again, with backoff, instead of failing
        the attempt and buying the answer again on the next one. It stays safe: the write
        carries this claim's epoch, so if the claim moved on meanwhile the write is refused
        (``FencedError``) and the answer is dropped, never recorded twice.
        """
        delay = 0.1
        while True:
            try:
                if blobs:
                    await self.store.put_blobs(blobs)
                await self.write(record)
            except Exception as exc:
                if not is_journal_outage(exc):
                    raise
                self._outage.failed(exc)
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
                continue
            self._outage.ok()
            return

    async def after_step(
        self, seq: int, kind: StepKind, name: str, replayed: bool, started: float
    ) -> None:
        """Tell the middleware a step finished or was replayed."""
        if self.mw.wants(Middleware.after_step):
            await self.mw.after_step(
                StepOutput(
                    self.agent,
                    self.event,
                    seq,
                    str(kind),
                    name,
                    replayed,
                    time.monotonic() - started,
                )
            )

    async def _answered(
        self,
        seq: int,
        kind: StepKind,
        name: str,
        request: Any,
        fp: str,
        meta: Meta,
        started: float,
        execute: Callable[[int], Awaitable[Any]],
        blobs: dict[str, str] | None,
    ) -> Any:
        """Replay: a step with no record at its position, answered or executed per policy."""
        assert self.answers is not None
        found = answer_step(self.answers, seq, kind, name, fp)
        at = self.clock()
        if found is not None:
            result = found.result
            step_meta = {**found.meta, "answered_from": found.seq}
            self.llm_calls_replayed += kind == StepKind.LLM
        else:
            result = to_jsonable(await execute(seq))
            step_meta = meta(result) if callable(meta) else meta
        record = self.done(seq, kind, name, fp, request, result, started_at=at, meta=step_meta)
        if blobs:
            await self.store.put_blobs(blobs)
        await self.write(record)
        await self.after_step(seq, kind, name, found is not None, started)
        return result

    async def _report_mismatch(
        self, seq: int, name: str, rec: StepRecord, fp: str
    ) -> NonDeterminismPolicy:
        policy = self.policy
        self.mismatches.append(
            {
                "seq": seq,
                "name": name,
                "recorded_name": rec.name,
                "recorded_fingerprint": rec.fingerprint,
                "new_fingerprint": fp,
                "policy": str(policy),
            }
        )
        if self.mw.wants(Middleware.on_nondeterminism):
            await self.mw.on_nondeterminism(
                NonDeterminismInput(
                    self.agent, self.event, seq, name, rec.fingerprint, fp, str(policy)
                )
            )
        return policy
