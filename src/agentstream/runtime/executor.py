"""The executor: one delivery of one event, from claim to completion or dead letter.

0. Strict ordering only: an event whose key is blocked by a dead letter (or still has parked
   events) is parked in the journal with its message and acknowledged; parked events come back
   through the worker once the key is released, and are unparked when done.
1. Claim the event in the journal (atomic; lease and fencing epoch).
   ``completed`` or ``dead``: the agent does not run, the delivery is acknowledged.
   ``busy`` (a live lease elsewhere, or a retry backoff): try again when it ends.
2. A poison event (undecodable, oversized, schema-invalid) is dead-lettered at once; an event
   whose durable attempt count is spent, or that arrived on the last delivery its broker allows
   (SQS ``maxReceiveCount``), is dead-lettered as ``attempts_exhausted``.
3. With entity versions configured, an event at or below the applied version completes as
   ``stale`` without running the agent.
4. The handler runs with a :class:`~agentstream.context.Context` that replays recorded steps.
5. Success: completion, outputs and entity version in one journal transaction.
   Transient failure: the failure is recorded, the claim released until the backoff ends.
   Anything else: one transaction marks the event dead, stores the envelope and queues the DLQ
   record.

Two outcomes end a delivery whose claim moved on, and they are told apart in logs and metrics
(``fenced`` and ``lease_lost``, see :mod:`agentstream.outcomes`). Either way nothing of this
delivery stands; the next claim (by whichever worker) tells.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentstream.agent import AgentSpec, Ordering
from agentstream.answers import RecordedAnswers
from agentstream.codec import to_jsonable
from agentstream.context import Context
from agentstream.current import running
from agentstream.deadletter import build_envelope, dead_letter_record, format_traceback
from agentstream.event import Event, Headers, payload_hash
from agentstream.failures import (
    FailureClass,
    FencedError,
    LeaseLostError,
    agentstream_cause,
    classify,
    retry_after_hint,
)
from agentstream.journal.blobs import expand_steps
from agentstream.journal.outage import OutageLog, is_journal_outage
from agentstream.journal.records import (
    Claim,
    ClaimStatus,
    Completion,
    EventMeta,
    FailureRecord,
    StepKind,
    StepRecord,
)
from agentstream.journal.store import EventJournal
from agentstream.journal.waits import WaitJournal
from agentstream.llm.base import LLMProvider
from agentstream.middleware import (
    CompletedInput,
    DeadLetterInput,
    Middleware,
    MiddlewareStack,
    OutputsInput,
    ProcessInput,
    ProcessOutcome,
    RetryInput,
    WaitInput,
)
from agentstream.outcomes import DeliveryOutcome, Done, Outcome, RetryLater
from agentstream.runtime.batcher import JournalBatcher
from agentstream.runtime.leases import LeaseBook
from agentstream.usercode import UserCode
from agentstream.wait_steps import Suspended

if TYPE_CHECKING:
    from agentstream.llm.admission import RateLimitRetry

log = logging.getLogger("agentstream.executor")

BUSY_RECHECK_S = 1.0
"""Longest wait before asking again about an event another worker holds."""


class Executor:
    """Processes deliveries of one agent's events.

    Args:
        spec: The agent.
        store: The journal.
        provider: LLM provider for ``ctx.llm``.
        middleware: Middleware stack.
        owner: This worker's id, recorded with claims.
        group: Consumer group, recorded in dead letters.
        lease_s: Claim lease; renewed while the handler runs.
        clock: Wall-clock seconds.
        rng: Randomness for backoff jitter.
        answers: Replay only: where steps missing from the claim's record are answered.
        rate_limit_retry: How model calls answered 429 are retried at the call site (None:
            a 429 fails the attempt like any transient error).
        user_code: Where sync user callables run (default: the loop's default executor).
        on_outputs: Called when a completion or dead letter has put records in the outbox (the
            worker wakes the outbox relay; events without outputs never wake it).
    """

    def __init__(
        self,
        spec: AgentSpec,
        store: EventJournal,
        provider: LLMProvider | None,
        middleware: MiddlewareStack,
        *,
        owner: str,
        group: str,
        lease_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        answers: RecordedAnswers | None = None,
        rate_limit_retry: RateLimitRetry | None = None,
        user_code: UserCode | None = None,
        on_outputs: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.provider = provider
        self.mw = middleware
        self.owner = owner
        self.group = group
        self.lease_s = lease_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._answers = answers
        self._rate_limit_retry = rate_limit_retry
        self.batcher = JournalBatcher(store, spec.name, owner=owner, lease_s=lease_s)
        self.leases = LeaseBook(lease_s)
        self.user_code = user_code or UserCode()
        self._on_outputs = on_outputs
        self.journal_outage = OutageLog(f"agent {spec.name}: journal", log)

    def claims(self) -> list[tuple[str, int]]:
        """Current ``(event identity, epoch)`` claims, for lease renewal."""
        return self.leases.claims()

    async def process(self, event: Event) -> Outcome:
        """Handle one delivery; never raises except on cancellation."""
        started = time.monotonic()
        if self.mw.wants(Middleware.before_process):
            await self.mw.before_process(ProcessInput(self.spec.name, event))
        ctx: Context | None = None
        failure_class: str | None = None
        error: BaseException | None = None
        try:
            if (
                self.spec.ordering == Ordering.STRICT
                and not event.woken
                and await self._held(event)
            ):
                outcome: Outcome = Done(DeliveryOutcome.PARKED)
            else:
                outcome, ctx, failure_class, error = await self._claim_and_run(event)
                if event.parked_id is not None and isinstance(outcome, Done):
                    await self.store.unpark(self.spec.name, event.parked_id)
        except FencedError as exc:
            outcome = self._fenced(event, exc)
        except LeaseLostError as exc:
            outcome = self._lease_lost(event, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # journal unavailable: keep the event, try again later
            if is_journal_outage(exc):
                self.journal_outage.failed(exc)
            else:
                log.exception(
                    "agent %s: journal error on %s; will retry", self.spec.name, event.identity
                )
            outcome, error = RetryLater(1.0, DeliveryOutcome.ERROR), exc
        else:
            self.journal_outage.ok()
        if self.mw.wants(Middleware.after_process):
            await self.mw.after_process(
                ProcessOutcome(
                    self.spec.name,
                    event,
                    outcome.outcome,
                    failure_class,
                    error,
                    time.monotonic() - started,
                    ctx.llm_calls if ctx else 0,
                    ctx.llm_calls_replayed if ctx else 0,
                )
            )
        return outcome

    def _fenced(self, event: Event, exc: FencedError) -> Outcome:
        log.warning(
            "agent %s: event %s: journal write rejected, the claim moved on (fenced): %s",
            self.spec.name,
            event.identity,
            exc,
        )
        return RetryLater(0.05, DeliveryOutcome.FENCED)

    def _lease_lost(self, event: Event, exc: LeaseLostError) -> Outcome:
        log.warning(
            "agent %s: event %s: handler stopped before its next step (lease_lost): %s",
            self.spec.name,
            event.identity,
            exc,
        )
        return RetryLater(0.05, DeliveryOutcome.LEASE_LOST)

    async def _held(self, event: Event) -> bool:
        """Strict ordering: whether the event must wait behind its key's dead letter or wait."""
        if event.parked_id is None:
            return await self.store.park(self.spec.name, event.identity, event.key, event.message)
        blocker = await self.store.blocked_by(self.spec.name, event.key)
        if blocker is not None and blocker != event.identity:
            return True
        # An earlier parked event of the key (held again, behind an event that began to wait
        # after this one was released) goes first: resuming this one would overtake it.
        first = await self.store.parked(self.spec.name, key=event.key, limit=1)
        return bool(first) and first[0].id < event.parked_id

    async def _claim_and_run(
        self, event: Event
    ) -> tuple[Outcome, Context | None, str | None, BaseException | None]:
        ctx: Context | None = None
        failure_class: str | None = None
        error: BaseException | None = None
        claim = await self.batcher.claim(
            event.identity,
            EventMeta(
                key=event.key,
                topic=event.message.topic,
                partition=event.message.partition,
                offset=event.message.offset,
                timestamp_ms=event.message.timestamp_ms,
                input_hash=payload_hash(event.message.value),
                group_id=self.group,
                identity_source=event.identity_source,
                message=event.message,
            ),
        )
        if claim.status == ClaimStatus.COMPLETED:
            outcome: Outcome = Done(DeliveryOutcome.DUPLICATE)
        elif claim.status == ClaimStatus.DEAD:
            outcome = Done(DeliveryOutcome.DEAD)
        elif claim.status == ClaimStatus.WAITING:
            outcome = Done(DeliveryOutcome.WAITING)
        elif claim.status == ClaimStatus.BUSY:
            # A live holder usually finishes long before its lease ends: look again soon,
            # but never later than the lease (or the retry backoff) ends.
            remaining = claim.lease_until - self._clock()
            outcome = RetryLater(max(0.05, min(remaining, BUSY_RECHECK_S)), DeliveryOutcome.BUSY)
        else:
            outcome, ctx, failure_class, error = await self._run_claimed(event, claim)
        return outcome, ctx, failure_class, error

    async def _run_claimed(
        self, event: Event, claim: Claim
    ) -> tuple[Outcome, Context | None, str | None, BaseException | None]:
        identity, epoch = event.identity, claim.epoch
        spec = self.spec
        lease = self.leases.hold(identity, epoch, claim.lease_until)
        try:
            if event.decode_error is not None:
                self.leases.ending(lease)
                cls = classify(event.decode_error)
                await self._dead_letter(event, claim, str(cls), event.decode_error, None)
                return Done(DeliveryOutcome.DEAD_LETTERED), None, str(cls), event.decode_error
            message = event.message
            if claim.attempts > spec.retry.attempts or message.final_delivery:
                failures = await self.store.failures(spec.name, identity)
                if claim.attempts > spec.retry.attempts:
                    reason = RuntimeError(
                        f"attempt {claim.attempts} exceeds the limit of {spec.retry.attempts}; "
                        "earlier attempts failed or were interrupted (worker crash, lease loss)"
                    )
                else:
                    reason = RuntimeError(
                        f"delivery {message.delivery_count} is the last the broker allows "
                        f"(maxReceiveCount {message.max_deliveries}); earlier deliveries were "
                        "interrupted (worker crash, shutdown, lost visibility), so the event is "
                        "dead-lettered before the queue's redrive policy moves it"
                    )
                cls = FailureClass.ATTEMPTS_EXHAUSTED
                self.leases.ending(lease)
                await self._dead_letter(event, claim, str(cls), reason, None, failures=failures)
                return Done(DeliveryOutcome.DEAD_LETTERED), None, str(cls), reason
            if spec.version is not None and event.version is not None:
                applied = await self.store.applied_version(spec.name, event.key)
                if applied is not None and event.version <= applied:
                    self.leases.ending(lease)
                    await self.store.complete(
                        spec.name,
                        identity,
                        epoch,
                        Completion(
                            outcome="stale",
                            result={"stale_version": event.version, "applied_version": applied},
                        ),
                    )
                    return Done(DeliveryOutcome.STALE), None, None, None
            ctx = Context(
                spec=spec,
                event=event,
                store=self.store,
                epoch=epoch,
                attempt=claim.attempts,
                recorded=claim.steps,
                provider=self.provider,
                middleware=self.mw,
                clock=self._clock,
                answers=self._answers,
                rate_limit_retry=self._rate_limit_retry,
                lease=lease,
                user_code=self.user_code,
                journal_outage=self.journal_outage,
            )
            try:
                try:
                    with running(ctx):
                        result = await spec.handler(ctx, event.payload)
                finally:
                    # What follows is this claim's own ending (completion, retry, dead letter,
                    # wait), each write fenced by the epoch: a renewal that finds the claim
                    # ended from here on found that write, not a takeover.
                    self.leases.ending(lease)
            except Suspended as suspended:
                await self._suspend(event, epoch, suspended)
                return Done(DeliveryOutcome.WAITING), ctx, None, None
            except FencedError as exc:
                return self._fenced(event, exc), ctx, None, None
            except LeaseLostError as exc:
                return self._lease_lost(event, exc), ctx, None, None
            except Exception as exc:
                cause = agentstream_cause(exc)  # an SDK may have wrapped it
                if isinstance(cause, FencedError):
                    return self._fenced(event, cause), ctx, None, None
                if isinstance(cause, LeaseLostError):
                    return self._lease_lost(event, cause), ctx, None, None
                if is_journal_outage(exc):
                    raise  # the journal's failure, not the event's: no attempt, try again later
                outcome, failed_as = await self._failed(event, claim, ctx, exc)
                return outcome, ctx, failed_as, exc
            await self._note_mismatches(ctx, epoch)
            extra: Headers = ()
            if self.mw.wants(Middleware.output_headers):
                extra = await self.mw.output_headers(OutputsInput(spec.name, event, 1))
            try:
                if spec.encoder is not None and spec.encoder.blocking:
                    outputs = await asyncio.to_thread(ctx.outputs, result, extra)
                else:
                    outputs = ctx.outputs(result, extra)
            except Exception as exc:  # an output the encoder refuses fails like the handler
                outcome, failed_as = await self._failed(event, claim, ctx, exc)
                return outcome, ctx, failed_as, exc
            completion = Completion(
                outputs=outputs,
                result=to_jsonable(result),
                entity=event.key
                if spec.version is not None and event.version is not None
                else None,
                version=event.version,
            )
            await self.batcher.complete(identity, epoch, completion)
            if outputs and self._on_outputs is not None:
                self._on_outputs()
            if self.mw.wants(Middleware.after_complete):
                await self.mw.after_complete(CompletedInput(spec.name, event, len(outputs), result))
            return Done(DeliveryOutcome.COMPLETED), ctx, None, None
        except asyncio.CancelledError:
            if not lease.lost:
                await self._release_quietly(identity, epoch)
            raise
        finally:
            self.leases.drop(lease)

    async def _suspend(self, event: Event, epoch: int, suspended: Suspended) -> None:
        """Write the wait and release the claim in one transaction (the event waits)."""
        store = self.store
        if not isinstance(store, WaitJournal):
            raise TypeError(f"journal {store!r} cannot suspend events")
        spec = self.spec
        wait = dataclasses.replace(
            suspended.wait,
            holds_key=spec.ordering == Ordering.STRICT and spec.hold_key_while_waiting,
        )
        await store.suspend(spec.name, event.identity, epoch, wait, suspended.step, event.key)
        if self.mw.wants(Middleware.on_wait):
            await self.mw.on_wait(WaitInput(spec.name, event, wait.kind, wait.name, "suspended"))

    async def _failed(
        self, event: Event, claim: Claim, ctx: Context, exc: BaseException
    ) -> tuple[Outcome, str]:
        spec = self.spec
        cls = classify(exc, spec.retry)
        await self._note_mismatches(ctx, claim.epoch)
        await self.store.record_failure(
            spec.name,
            event.identity,
            claim.epoch,
            FailureRecord(
                attempt=claim.attempts,
                failure_class=str(cls),
                error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
                message=str(exc)[:4000],
                traceback=format_traceback(exc)[-8000:],
                at=self._clock(),
            ),
        )
        if cls == FailureClass.TRANSIENT and claim.attempts < spec.retry.attempts:
            delay = spec.retry.backoff(claim.attempts, self._rng)
            hint = retry_after_hint(exc)
            if hint is not None:
                delay = max(delay, hint)
            await self.store.release(
                spec.name, event.identity, claim.epoch, not_before=self._clock() + delay
            )
            if self.mw.wants(Middleware.on_retry):
                await self.mw.on_retry(
                    RetryInput(spec.name, event, claim.attempts, str(cls), exc, delay)
                )
            return RetryLater(delay), str(cls)
        final = FailureClass.ATTEMPTS_EXHAUSTED if cls == FailureClass.TRANSIENT else cls
        await self._dead_letter(event, claim, str(final), exc, ctx)
        return Done(DeliveryOutcome.DEAD_LETTERED), str(final)

    async def _note_mismatches(self, ctx: Context, epoch: int) -> None:
        for m in ctx.mismatches:
            log.warning(
                "agent %s event %s: non-deterministic step %s %r (recorded %s, now %s); policy %s",
                self.spec.name,
                ctx.identity,
                m["seq"],
                m["name"],
                m["recorded_fingerprint"][:12],
                m["new_fingerprint"][:12],
                m["policy"],
            )
            await self.store.record_failure(
                self.spec.name,
                ctx.identity,
                epoch,
                FailureRecord(
                    attempt=ctx.attempt,
                    failure_class=str(FailureClass.NONDETERMINISM),
                    error_type="agentstream.NonDeterminismReport",
                    message=(
                        f"step {m['seq']} {m['name']!r}: recorded fingerprint "
                        f"{m['recorded_fingerprint']} (step {m['recorded_name']!r}), new "
                        f"fingerprint {m['new_fingerprint']}; policy {m['policy']}"
                    ),
                    at=self._clock(),
                ),
            )
        ctx.mismatches.clear()

    async def _dead_letter(
        self,
        event: Event,
        claim: Claim,
        failure_class: str,
        error: BaseException | None,
        ctx: Context | None,
        *,
        failures: list[FailureRecord] | None = None,
    ) -> None:
        spec = self.spec
        if failures is None:
            failures = await self.store.failures(spec.name, event.identity)
        steps = await self.store.steps(spec.name, event.identity)
        envelope = build_envelope(
            spec=spec,
            event=event,
            group=self.group,
            failure_class=failure_class,
            error=error,
            attempts=claim.attempts,
            failures=failures,
            steps=steps,
            issued_keys=ctx.issued_keys if ctx else (),
            epoch=claim.epoch,
            detail=await self._transcript(steps),
        )
        outputs = (
            [dead_letter_record(spec.dead_letter, event, envelope)] if spec.dead_letter else []
        )
        dlq_id = await self.store.dead_letter(
            spec.name,
            event.identity,
            claim.epoch,
            failure_class=failure_class,
            envelope=envelope,
            outputs=outputs,
        )
        if outputs and self._on_outputs is not None:
            self._on_outputs()
        log.warning(
            "agent %s: event %s dead-lettered (%s, attempt %d): %s",
            spec.name,
            event.identity,
            failure_class,
            claim.attempts,
            error,
        )
        if self.mw.wants(Middleware.on_dead_letter):
            await self.mw.on_dead_letter(
                DeadLetterInput(spec.name, event, failure_class, error, dlq_id)
            )

    async def _transcript(self, steps: list[StepRecord]) -> dict[str, Any] | None:
        """The conversation of the event's last model call, for the dead-letter envelope.

        Each model call's output is already in the envelope's ``llm_attempts``; the last
        request's messages show what the agent saw, expanded from the content-addressed journal.
        """
        llm = [s for s in steps if s.kind == StepKind.LLM]
        if not llm:
            return None
        try:
            last = (await expand_steps(self.store, llm[-1:]))[0]
        except KeyError:
            return None
        request = last.request if isinstance(last.request, dict) else {}
        return {
            "transcript": {
                "seq": last.seq,
                "name": last.name,
                "model": request.get("model"),
                "messages": request.get("messages"),
                "tools": request.get("tools"),
                "response_format": request.get("response_format"),
            }
        }

    async def _release_quietly(self, identity: str, epoch: int) -> None:
        try:
            await asyncio.shield(self.store.release(self.spec.name, identity, epoch))
        except (asyncio.CancelledError, Exception):  # shutdown: the lease expires anyway
            log.debug("release of %s failed during cancellation", identity)
