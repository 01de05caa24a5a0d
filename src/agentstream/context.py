"""The Context an agent runs with: journaled model calls, steps and effects.

Every ``ctx.llm(...)``, ``ctx.step(...)`` and ``ctx.effect(...)`` is a journaled step of
``(agent, event identity)`` identified by a stable key: its name and occurrence among the
event's steps of that name, or an explicit ``key=`` (see :mod:`agentstream.steps`), so
concurrent steps replay whatever order they finish in. A step whose record exists returns the
recorded result; its request fingerprint must match the
recorded one, or the agent's non-determinism policy decides. Results cross a JSON round trip on
the live path too (validated back into the function's return annotation), so live and resumed
executions see identical values.

Effects follow the intent ledger: the intent is recorded (``started``) before the call and the
result (``done``) after. An intent found ``started`` on resume means the worker died between the
call and its record; it is reconciled through ``reconcile(idempotency_key)``, retried with the
same key when declared ``idempotent``, or else marked ``unknown`` and the event dead-lettered.

User callables (step functions, effects, reconcile) run through
:class:`~agentstream.usercode.UserCode`: sync ones in a thread pool, never on the event loop.
Under a worker's lease, no journaled step starts once the claim is lost or about to run out
(``LeaseLostError``), and an async model call, step or effect in flight is cancelled when the
lease runs out under it.

The effect boundary is guarded: before an effect's function is called, the claim is confirmed
in the journal (fenced by epoch) with at least the effect's ``timeout`` left, extending the
lease to cover it; the intent records that deadline (``meta["deadline"]``). A worker that takes
over an intent left ``started`` under an earlier epoch waits until that deadline has passed
before it reconciles or retries, so the earlier owner's call has finished or been given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from agentstream import waits
from agentstream.agent import AgentSpec, NonDeterminismPolicy
from agentstream.codec import fingerprint, return_adapter, to_jsonable
from agentstream.event import Event, Headers, OutgoingRecord, headers_from_mapping
from agentstream.failures import (
    AgentStreamError,
    EffectOutcomeUnknown,
    EffectTimeoutError,
    FencedError,
    NonDeterminismError,
    RateLimitedError,
    StepNotRecorded,
)
from agentstream.journal.blobs import compact_request
from agentstream.journal.outage import OutageLog, is_journal_outage
from agentstream.journal.records import StepKind, StepRecord, StepStatus
from agentstream.journal.signals import send_signal
from agentstream.journal.waits import SignalReceipt, WaitJournal
from agentstream.llm.base import LLMRequest, LLMResponse
from agentstream.llm.breaker import CircuitBreaker
from agentstream.llm.client import LLMClient
from agentstream.llm.tokens import estimate_prompt_tokens
from agentstream.llm.wire import chat_body
from agentstream.middleware import (
    LLMCallInput,
    LLMCallOutput,
    Middleware,
    MiddlewareStack,
    NonDeterminismInput,
    RateLimitWaitInput,
    StepOutput,
)
from agentstream.outputs import Emitted, build_outputs
from agentstream.steps import STEP_KEY, StepIndex
from agentstream.usercode import UserCode, is_async_callable

if TYPE_CHECKING:
    from agentstream.journal.store import EventJournal
    from agentstream.llm.admission import RateLimitRetry
    from agentstream.llm.base import LLMProvider

_log = logging.getLogger("agentstream.context")

T = TypeVar("T")

DEFAULT_EFFECT_TIMEOUT_S = 30.0
"""How long an effect may run (``ctx.effect(..., timeout=...)``) unless the agent says."""

_LEASE_SLACK_S = 1.0
"""Lease kept beyond an effect's deadline, so the deadline passes before the claim can move."""


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


class RecordedAnswers(Protocol):
    """Replay's source of answers for steps that have no record at their position.

    Live runs have none. Recorded replay answers nothing and executes nothing; shadow replay
    answers a step from the live journal when one with the same kind, name and request
    fingerprint was recorded, lets unanswered model calls and plain steps execute, and never
    executes an effect: an unanswered effect is suppressed and returns None.
    """

    def answer(self, kind: StepKind, name: str, fingerprint: str) -> StepRecord | None:
        """A recorded step with this request, not used before in this event, if any."""
        ...

    def may_execute(self, kind: StepKind) -> bool:
        """Whether an unanswered model call or plain step may run."""
        ...

    def unanswered_effect(self, name: str) -> None:
        """An effect has no recorded answer: raise to fail the replay, return to suppress it."""
        ...


class Context:
    """What an agent's handler receives as ``ctx``.

    A model call answered 429 is called again after the provider's ``Retry-After`` when the
    app has admission control (``rate_limit_retry``): the wait is counted in
    ``rate_limit_waits``, not as a failed attempt of the event.

    Attributes:
        event: The event being processed (identity, key, source message, payload).
        attempt: This processing attempt, from 1 (durable across restarts).
        llm: Journaled model calls (``await ctx.llm(...)``, ``ctx.llm.parse(...)``).
        rate_limit_waits: 429 answers absorbed by waiting during this delivery.
        outage_waits: Provider failures absorbed by waiting (circuit breaker) during this
            delivery.
    """

    def __init__(
        self,
        *,
        spec: AgentSpec,
        event: Event,
        store: EventJournal,
        epoch: int,
        attempt: int,
        recorded: tuple[StepRecord, ...],
        provider: LLMProvider | None,
        middleware: MiddlewareStack,
        clock: Callable[[], float] = time.time,
        answers: RecordedAnswers | None = None,
        rate_limit_retry: RateLimitRetry | None = None,
        lease: ClaimLease | None = None,
        user_code: UserCode | None = None,
        journal_outage: OutageLog | None = None,
    ) -> None:
        self.event = event
        self._lease = lease
        self._journal_outage = journal_outage or OutageLog("journal", _log)
        self._user = user_code or UserCode()
        self._answers = answers
        self.attempt = attempt
        self._spec = spec
        self._store = store
        self._epoch = epoch
        self._steps = StepIndex(recorded)
        self._provider = provider
        self._mw = middleware
        self._clock = clock
        self._emitted: list[Emitted] = []
        self.issued_keys: list[str] = []
        self.mismatches: list[dict[str, Any]] = []
        self.llm_calls = 0
        self.llm_calls_replayed = 0
        self.steps_replayed = 0
        self.rate_limit_waits = 0
        self.outage_waits = 0
        self._rate_limit_retry = rate_limit_retry
        self._spent_calls = sum(1 for s in recorded if s.kind == StepKind.LLM)
        self._spent_tokens = sum(int(s.meta.get("total_tokens", 0)) for s in recorded)
        self._spent_cost = sum(float(s.meta.get("cost_usd", 0.0)) for s in recorded)
        self.llm = LLMClient(self, model=spec.model, prompt_version=spec.prompt_version)

    @property
    def identity(self) -> str:
        """The event's stable identity."""
        return self.event.identity

    @property
    def agent(self) -> str:
        """The agent's name."""
        return self._spec.name

    @property
    def payload(self) -> Any:
        """The decoded input."""
        return self.event.payload

    def key(self, name: str) -> str:
        """Deterministic idempotency key for a named step of this event.

        It depends only on the agent, the event identity and ``name`` (never on model output or
        randomness), so every attempt and every replay of the event derives the same key. Use a
        distinct name for each effect within one event.
        """
        digest = hashlib.sha256(
            f"{self._spec.name}\x00{self.event.identity}\x00{name}".encode()
        ).hexdigest()[:32]
        key = f"as-{digest}"
        if key not in self.issued_keys:
            self.issued_keys.append(key)
        return key

    def emit(
        self,
        value: Any,
        *,
        topic: str | None = None,
        key: str | bytes | None = None,
        headers: dict[str, str | bytes] | None = None,
    ) -> None:
        """Queue an output record, published through the outbox when the event completes.

        Args:
            value: Pydantic model, JSON-able value, text or bytes.
            topic: Destination (default: the agent's output topic).
            key: Record key (default: the event's ordering key).
            headers: Extra headers.
        """
        raw_key = key.encode() if isinstance(key, str) else key
        self._emitted.append(Emitted(value, topic, raw_key, headers_from_mapping(headers)))

    def outputs(self, result: Any, extra_headers: Headers = ()) -> list[OutgoingRecord]:
        """Outgoing records for emitted values plus the handler's return value.

        ``extra_headers`` (from middleware, e.g. trace context) go on every record, last.
        """
        return build_outputs(
            agent=self._spec.name,
            default_topic=self._spec.output,
            event=self.event,
            emitted=self._emitted,
            result=result,
            extra_headers=extra_headers,
            encoder=self._spec.encoder,
        )

    async def step(
        self,
        name: str,
        fn: Callable[..., T | Awaitable[T]],
        *args: Any,
        key: str | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` once per event; later attempts get the recorded result.

        ``fn`` may be sync or async; its result must be JSON-able (pydantic models included)
        and is validated back into ``fn``'s return annotation. ``key`` names this call among
        the event's steps of ``name`` (a tool call id, say); by default it is the call's
        occurrence of ``name``.
        """
        request = {"args": to_jsonable(args), "kwargs": to_jsonable(kwargs)}
        adapter = return_adapter(fn)

        def execute(_seq: int) -> Awaitable[Any]:
            call = self._user.call(fn, *args, **kwargs)
            # An async step can be cut off when the lease runs out; a thread cannot.
            if self._lease is not None and is_async_callable(fn):
                return self._lease.bound(lambda: call)
            return call

        value = await self._journaled(StepKind.STEP, name, request, execute, meta={}, key=key)
        return value if adapter is None else adapter.validate_python(value)  # type: ignore[no-any-return]

    async def effect(
        self,
        name: str,
        fn: Callable[..., T | Awaitable[T]],
        *args: Any,
        reconcile: Callable[[str], Any] | None = None,
        idempotent: bool = False,
        key: str | None = None,
        timeout: float = DEFAULT_EFFECT_TIMEOUT_S,  # noqa: ASYNC109 - the effect's deadline
        **kwargs: Any,
    ) -> T:
        """Perform a side effect exactly once per event, through the intent ledger.

        Args:
            name: Step name, unique within the event.
            fn: The effect; called as ``fn(*args, **kwargs)`` (pass
                ``idempotency_key=ctx.key(name)`` in kwargs to hand the key downstream).
            *args: Positional arguments for ``fn``.
            reconcile: ``reconcile(idempotency_key)`` returns the effect's result if it already
                happened, else None; consulted when a previous attempt died mid-effect.
            idempotent: ``fn`` is safe to call again with the same key (the downstream API
                deduplicates), so an unfinished intent is simply retried.
            key: Names this call among the event's effects of ``name`` (a tool call id, say);
                default: its occurrence of ``name``.
            timeout: Longest time the call may take (default 30 s). The claim is extended to
                cover it before the call and the intent records the deadline; a worker taking
                over waits for it before reconciling. An async ``fn`` still running at the
                deadline is cancelled (:class:`EffectTimeoutError`, retried and reconciled);
                a sync one cannot be, so set it above the call's own client timeout.
            **kwargs: Keyword arguments for ``fn``.

        Raises:
            EffectOutcomeUnknown: A previous attempt started the effect, and neither
                ``reconcile`` nor ``idempotent`` allows finding out or repeating safely.
            FencedError: The claim moved on before the effect could be guarded.
            LeaseLostError: The claim was lost or is running out; the effect was not called.
        """
        idem = kwargs.get("idempotency_key")
        idem_key = str(idem) if idem is not None else self.key(name)
        if idem_key not in self.issued_keys:
            self.issued_keys.append(idem_key)
        request = {"args": to_jsonable(args), "kwargs": to_jsonable(kwargs)}
        adapter = return_adapter(fn)
        fp = fingerprint("effect", name, request)
        seq, rec = self._place(StepKind.EFFECT, name, fp, key)
        started = time.monotonic()
        replayed = False
        if rec is not None and (
            rec.kind != StepKind.EFFECT or rec.name != name or rec.fingerprint != fp
        ):
            policy = await self._report_mismatch(seq, name, rec, fp)
            if policy == NonDeterminismPolicy.USE_RECORDED and rec.status == StepStatus.DONE:
                return rec.result if adapter is None else adapter.validate_python(rec.result)  # type: ignore[no-any-return]
            raise NonDeterminismError(
                f"effect {name!r} at step {seq} differs from the recorded "
                f"{rec.kind} {rec.name!r}; an effect is never re-run on a changed request",
                seq=seq,
                recorded_fingerprint=rec.fingerprint,
                new_fingerprint=fp,
            )
        result: Any
        if rec is None and self._answers is not None:
            answered, value = await self._answer_effect(seq, name, fp, request, idem_key, started)
            if not answered:  # shadow replay: the effect is suppressed, never executed
                return None  # type: ignore[return-value]
            return value if adapter is None else adapter.validate_python(value)  # type: ignore[no-any-return]
        if rec is not None and rec.status == StepStatus.DONE:
            result, replayed = rec.result, True
            self.steps_replayed += 1
        else:
            if rec is not None and rec.status == StepStatus.UNKNOWN:
                raise EffectOutcomeUnknown(
                    f"effect {name!r} (key {idem_key}) has an unknown outcome from an earlier "
                    "attempt; resolve it and redrive the event"
                )
            reconciled = False
            if rec is not None and rec.status == StepStatus.STARTED:
                await self._wait_for_earlier_owner(rec)
                if reconcile is not None:
                    self._check_lease()
                    found = await self._user.call(reconcile, idem_key)
                    if found is not None:
                        result, reconciled = to_jsonable(found), True
                elif not idempotent:
                    rec.status = StepStatus.UNKNOWN
                    await self._write(rec)
                    raise EffectOutcomeUnknown(
                        f"effect {name!r} (key {idem_key}) was started by an earlier attempt and "
                        "its outcome was never recorded; without reconcile= or idempotent=True "
                        "it cannot be repeated safely"
                    )
            if not reconciled:
                deadline = await self._guard_effect(timeout)
                intent = StepRecord(
                    seq=seq,
                    kind=StepKind.EFFECT,
                    name=name,
                    fingerprint=fp,
                    status=StepStatus.STARTED,
                    request=request,
                    idempotency_key=idem_key,
                    meta={"deadline": deadline},
                    started_at=self._clock(),
                )
                await self._write(intent)
                try:
                    result = to_jsonable(await self._run_effect(name, fn, args, kwargs, deadline))
                except Exception:
                    await self._effect_ended(intent)
                    raise
            done = StepRecord(
                seq=seq,
                kind=StepKind.EFFECT,
                name=name,
                fingerprint=fp,
                status=StepStatus.DONE,
                request=request,
                result=result,
                idempotency_key=idem_key,
                meta={"reconciled": reconciled} if reconciled else {},
                started_at=rec.started_at if rec is not None else self._clock(),
                finished_at=self._clock(),
            )
            await self._keep(done, None)  # the effect happened: its record must not be lost
        await self._after_step(seq, StepKind.EFFECT, name, replayed, started)
        return result if adapter is None else adapter.validate_python(result)  # type: ignore[no-any-return]

    def _check_lease(self) -> None:
        if self._lease is not None:
            self._lease.check()

    async def _effect_ended(self, intent: StepRecord) -> None:
        """Record that an effect call raised, so it is known to be no longer running.

        The next attempt then reconciles at once instead of waiting out the deadline. Best
        effort: if this write fails, the next attempt waits, which is only slower.
        """
        intent.meta = {**intent.meta, "ended": True}
        with contextlib.suppress(Exception):
            await self._write(intent)

    async def _wait_for_earlier_owner(self, rec: StepRecord) -> None:
        """Wait out the deadline of an intent another (earlier) claim left ``started``."""
        meta = rec.meta if isinstance(rec.meta, dict) else {}
        deadline = meta.get("deadline")
        if rec.epoch >= self._epoch or not isinstance(deadline, int | float) or meta.get("ended"):
            return
        if float(deadline) > self._clock():
            await self._hold_claim(float(deadline) - self._clock())
        while (left := float(deadline) - self._clock()) > 0:
            self._check_lease()
            await asyncio.sleep(min(left, 0.5))

    async def _guard_effect(self, seconds: float) -> float:
        """Confirm the claim in the journal with ``seconds`` left; return the effect's deadline.

        The confirmation is a fenced lease extension: it fails if another worker's claim
        replaced ours, and afterwards nobody can claim the event before the deadline has passed.
        """
        self._check_lease()
        deadline = self._clock() + seconds
        await self._hold_claim(seconds)
        return deadline

    async def _hold_claim(self, seconds: float) -> None:
        """Extend the claim in the journal (fenced by epoch) to last ``seconds`` more."""
        if self._lease is None:
            return
        until = self._clock() + seconds + _LEASE_SLACK_S
        lost = await self._store.renew(
            self._spec.name, [(self.identity, self._epoch)], seconds + _LEASE_SLACK_S
        )
        if lost:
            raise FencedError(
                f"claim on {self._spec.name}/{self.identity} at epoch {self._epoch} is no "
                "longer current; the effect was not called"
            )
        self._lease.until = max(self._lease.until, until)

    async def _run_effect(
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
            return await asyncio.wait_for(call, timeout=max(0.0, deadline - self._clock()))
        except TimeoutError:
            raise EffectTimeoutError(
                f"effect {name!r} was still running at its deadline and was cancelled; its "
                "outcome is unknown and will be reconciled"
            ) from None

    async def wait_for(
        self,
        name: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109  (the wait's deadline)
        schema: Any = None,
        default: Any = waits.MISSING,
    ) -> Any:
        """Wait for the signal ``name`` sent to this event, without holding anything meanwhile.

        The first time the handler gets here with no signal, the event is suspended (its claim,
        lease, task and in-flight slot are released, its offset moves on) and resumed by
        whichever worker is alive when the signal arrives or the timeout passes; the steps
        before the wait replay from the journal. The answer is journaled, so every later
        replay returns the same one.

        Args:
            name: The signal's name (``agentstream signal APP AGENT EVENT_ID NAME``).
            timeout: Seconds from the first time the wait is reached (None: no timeout).
            schema: Type the signal's data is validated into (a pydantic model...); a signal
                whose data does not validate is rejected and the wait goes on.
            default: Returned on timeout (default: raise :class:`~agentstream.WaitTimeout`).

        Returns:
            The signal's data, validated.
        """
        return await waits.wait_for(self, name, timeout=timeout, schema=schema, default=default)

    async def signal(
        self,
        agent: str,
        event_id: str,
        name: str,
        data: Any = None,
        *,
        signal_id: str | None = None,
    ) -> SignalReceipt:
        """Send the signal ``name`` to an event of ``agent`` (one agent answering another's wait).

        Applied once per ``signal_id`` (default: from this event's identity and the signal's
        name, so a redelivery or replay of this event sends it once); kept when the event is
        not waiting yet or not known yet. Raises :class:`~agentstream.SignalRejected` when
        that event is finished.
        """
        store = self._store
        if not isinstance(store, WaitJournal):
            raise AgentStreamError(f"the journal {store!r} cannot record signals")
        sid = signal_id or f"{self._spec.name}/{self.identity}/{name}"
        return await send_signal(store, agent, event_id, name, data, signal_id=sid, unknown_ok=True)

    async def sleep(self, seconds: float) -> None:
        """Sleep durably: the event is suspended and resumed after ``seconds`` by any worker.

        The timer starts the first time the handler gets here and survives restarts; the
        sleep is a journaled step, so a resumed or replayed handler passes it at once.
        """
        await waits.sleep(self, seconds)

    async def now(self) -> float:
        """Wall-clock seconds, recorded once per event (replay-safe)."""

        async def read(_seq: int) -> float:
            return time.time()

        value: float = await self._journaled(StepKind.STEP, "now", None, read, meta={})
        return value

    async def uuid(self) -> str:
        """A random UUID, recorded once per event (replay-safe)."""

        async def make(_seq: int) -> str:
            return str(uuid.uuid4())

        value: str = await self._journaled(StepKind.STEP, "uuid", None, make, meta={})
        return value

    async def call_llm(
        self,
        request: LLMRequest,
        *,
        name: str,
        prompt_version: str | None,
        via: LLMProvider | None = None,
    ) -> LLMResponse:
        """Journaled model call (used by ``ctx.llm`` and the journaled HTTP transport).

        ``via`` makes the call through another provider than the app's (the transport's
        upstream); everything else (journal, budgets, admission, middleware) is the same.
        """
        provider = via or self._provider
        answered: dict[int, str] = {}

        async def execute(seq: int) -> Any:
            if provider is None:
                raise RuntimeError(
                    f"agent {self._spec.name!r} called ctx.llm but the app has no LLM provider"
                )
            estimate = estimate_prompt_tokens(chat_body(request))
            self._check_budget(estimate + (request.max_tokens or 0))
            if self._lease is None:
                response, answered[seq] = await self._call_provider(
                    provider, request, seq, estimate
                )
            else:
                lease = self._lease
                response, answered[seq] = await lease.bound(
                    lambda: self._call_provider(provider, request, seq, estimate)
                )
            self.llm_calls += 1
            self._spent_calls += 1
            self._spent_tokens += response.usage.total_tokens
            self._spent_cost += response.cost_usd
            return response.model_dump(mode="json")

        def meta_of(result: Any) -> dict[str, Any]:
            usage = result.get("usage") or {}
            by = next(iter(answered.values()), request.model)  # this call's one answer
            return {
                "model": result.get("model") or by,
                "requested_model": request.model,
                **({"fallback_model": by} if by != request.model else {}),
                "prompt_version": prompt_version,
                "temperature": request.temperature,
                "max_tokens": request.max_tokens,
                "params": request.params,
                "input_hash": self._input_hash(),
                "prompt_tokens": usage.get("prompt_tokens", 0),
                "completion_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
                "cost_usd": result.get("cost_usd", 0.0),
                "cost_source": result.get("cost_source"),
                "latency_ms": result.get("latency_ms", 0.0),
                "response_id": result.get("id"),
            }

        compacted, blobs = compact_request(request.model_dump(mode="json"))
        value = await self._journaled(
            StepKind.LLM,
            name,
            compacted,
            execute,
            meta=meta_of,
            fp=request.fingerprint(),
            blobs=blobs,
        )
        return LLMResponse.model_validate(value)

    async def _call_provider(
        self, provider: LLMProvider, request: LLMRequest, seq: int, estimate: int
    ) -> tuple[LLMResponse, str]:
        """One model call through the middleware; returns the answer and the model that gave it.

        A provider outage (the circuit breaker, when the app has one) and 429s (when admission
        control is configured) are absorbed by waiting and calling again, not as attempts.
        """
        step_key = f"{self._spec.name}/{self.identity}/{seq}"
        retry = self._rate_limit_retry
        breaker = self._mw.find(CircuitBreaker)
        guard = (
            breaker.call(self._spec.name, provider, request, self._spec.fallback_model)
            if breaker is not None
            else None
        )
        waited = 0.0
        while True:
            call = request
            if guard is not None:
                call = await guard.admit()
                if guard.waited_s > 0.001:
                    await self._rate_limit_wait(seq, request, "provider_outage", guard.waited_s)
            if self._mw.wants(Middleware.before_llm_call):
                admitting = time.monotonic()
                await self._mw.before_llm_call(
                    LLMCallInput(self._spec.name, self.event, seq, call, estimate, provider.name)
                )
                if retry is not None and time.monotonic() - admitting > 0.001:
                    await self._rate_limit_wait(
                        seq, request, "admission", time.monotonic() - admitting
                    )
            started = time.monotonic()
            response: LLMResponse | None = None
            error: Exception | None = None
            try:
                response = await provider.complete(call, step_key=step_key)
            except Exception as exc:
                error = exc
            finally:
                if self._mw.wants(Middleware.after_llm_call):
                    await self._mw.after_llm_call(
                        LLMCallOutput(
                            self._spec.name,
                            self.event,
                            seq,
                            call,
                            response,
                            error,
                            time.monotonic() - started,
                            provider.name,
                        )
                    )
            outage_delay = await guard.record(response, error) if guard is not None else None
            if response is not None:
                return response, call.model
            assert error is not None
            if outage_delay is not None:
                self.outage_waits += 1
                if outage_delay > 0:
                    await self._rate_limit_wait(seq, request, "provider_outage", outage_delay)
                    await asyncio.sleep(outage_delay)
                continue
            if retry is None or not isinstance(error, RateLimitedError):
                raise error
            delay = retry.delay(error)
            if retry.max_wait_s is not None and waited + delay > retry.max_wait_s:
                raise error
            waited += delay
            self.rate_limit_waits += 1
            await self._rate_limit_wait(seq, request, "retry_after", delay)
            await asyncio.sleep(delay)

    async def _rate_limit_wait(
        self, seq: int, request: LLMRequest, reason: str, delay_s: float
    ) -> None:
        if self._mw.wants(Middleware.on_rate_limit_wait):
            await self._mw.on_rate_limit_wait(
                RateLimitWaitInput(self._spec.name, self.event, seq, request.model, reason, delay_s)
            )

    def _input_hash(self) -> str:
        return hashlib.sha256(self.event.message.value).hexdigest()

    def _check_budget(self, estimate: int) -> None:
        self._spec.budget.check(
            calls=self._spent_calls,
            tokens=self._spent_tokens,
            cost_usd=self._spent_cost,
            next_call_tokens=estimate,
        )

    async def _journaled(
        self,
        kind: StepKind,
        name: str,
        request: Any,
        execute: Callable[[int], Awaitable[Any]],
        *,
        meta: dict[str, Any] | Callable[[Any], dict[str, Any]],
        fp: str | None = None,
        blobs: dict[str, str] | None = None,
        key: str | None = None,
    ) -> Any:
        fp = fp or fingerprint(str(kind), name, request)
        seq, rec = self._place(kind, name, fp, key)
        started = time.monotonic()
        if rec is not None:
            if rec.kind != kind or rec.name != name or rec.fingerprint != fp:
                policy = await self._report_mismatch(seq, name, rec, fp)
                if policy == NonDeterminismPolicy.USE_RECORDED:
                    rec = rec if rec.status == StepStatus.DONE else None
                elif policy == NonDeterminismPolicy.RERUN:
                    rec = None
                else:
                    raise NonDeterminismError(
                        f"step {seq} {kind} {name!r}: request fingerprint {fp[:12]} differs from "
                        f"the recorded {rec.kind} {rec.name!r} ({rec.fingerprint[:12]})",
                        seq=seq,
                        recorded_fingerprint=rec.fingerprint,
                        new_fingerprint=fp,
                    )
            if rec is not None and rec.status == StepStatus.DONE:
                self.steps_replayed += 1
                if kind == StepKind.LLM:
                    self.llm_calls_replayed += 1
                await self._after_step(seq, kind, name, True, started)
                return rec.result
        elif self._answers is not None:
            return await self._answered(seq, kind, name, request, fp, meta, started, execute, blobs)
        self._check_lease()
        at = self._clock()
        result = to_jsonable(await execute(seq))
        record = StepRecord(
            seq=seq,
            kind=kind,
            name=name,
            fingerprint=fp,
            status=StepStatus.DONE,
            request=request,
            result=result,
            meta=meta(result) if callable(meta) else meta,
            started_at=at,
            finished_at=self._clock(),
        )
        await self._keep(record, blobs)
        await self._after_step(seq, kind, name, False, started)
        return result

    async def _keep(self, record: StepRecord, blobs: dict[str, str] | None) -> None:
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
                    await self._store.put_blobs(blobs)
                await self._write(record)
            except Exception as exc:
                if not is_journal_outage(exc):
                    raise
                self._journal_outage.failed(exc)
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
                continue
            self._journal_outage.ok()
            return

    async def _answer_effect(
        self, seq: int, name: str, fp: str, request: Any, idem_key: str, started: float
    ) -> tuple[bool, Any]:
        """Replay: answer an effect from the recorded journal, or suppress it."""
        assert self._answers is not None
        found = self._answers.answer(StepKind.EFFECT, name, fp)
        if found is not None and found.status != StepStatus.DONE:
            found = None
        if found is None:
            self._answers.unanswered_effect(name)
        record = StepRecord(
            seq=seq,
            kind=StepKind.EFFECT,
            name=name,
            fingerprint=fp,
            status=StepStatus.DONE,
            request=request,
            result=None if found is None else found.result,
            idempotency_key=idem_key,
            meta={"suppressed": True} if found is None else {"answered_from": found.seq},
            started_at=self._clock(),
            finished_at=self._clock(),
        )
        await self._write(record)
        if found is not None:
            self.steps_replayed += 1
        await self._after_step(seq, StepKind.EFFECT, name, True, started)
        return found is not None, record.result

    async def _answered(
        self,
        seq: int,
        kind: StepKind,
        name: str,
        request: Any,
        fp: str,
        meta: dict[str, Any] | Callable[[Any], dict[str, Any]],
        started: float,
        execute: Callable[[int], Awaitable[Any]],
        blobs: dict[str, str] | None = None,
    ) -> Any:
        """Replay: a step with no record at its position, answered or executed per policy."""
        assert self._answers is not None
        found = self._answers.answer(kind, name, fp)
        if found is None and not self._answers.may_execute(kind):
            raise StepNotRecorded(
                f"replay: step {seq} {kind} {name!r} (fingerprint {fp[:12]}) has no recorded "
                "answer, and this replay executes nothing"
            )
        at = self._clock()
        if found is not None:
            result = found.result
            step_meta = {**found.meta, "answered_from": found.seq}
            self.steps_replayed += 1
            self.llm_calls_replayed += kind == StepKind.LLM
        else:
            result = to_jsonable(await execute(seq))
            step_meta = meta(result) if callable(meta) else meta
        record = StepRecord(
            seq=seq,
            kind=kind,
            name=name,
            fingerprint=fp,
            status=StepStatus.DONE,
            request=request,
            result=result,
            meta=step_meta,
            started_at=at,
            finished_at=self._clock(),
        )
        if blobs:
            await self._store.put_blobs(blobs)
        await self._write(record)
        await self._after_step(seq, kind, name, found is not None, started)
        return result

    def _place(
        self, kind: StepKind, name: str, fp: str, key: str | None
    ) -> tuple[int, StepRecord | None]:
        placed = self._steps.place(kind, name, fp, key)
        return placed.seq, placed.record

    async def _write(self, record: StepRecord) -> None:
        """Journal a step, with its key in ``meta``."""
        key = self._steps.key_to_store(record.seq, record.name)
        if key is not None and record.meta.get(STEP_KEY) != key:
            record.meta = {**record.meta, STEP_KEY: key}
        await self._store.write_step(self._spec.name, self.identity, self._epoch, record)

    async def _report_mismatch(
        self, seq: int, name: str, rec: StepRecord, fp: str
    ) -> NonDeterminismPolicy:
        policy = self._spec.nondeterminism
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
        if self._mw.wants(Middleware.on_nondeterminism):
            await self._mw.on_nondeterminism(
                NonDeterminismInput(
                    self._spec.name, self.event, seq, name, rec.fingerprint, fp, str(policy)
                )
            )
        return policy

    async def _after_step(
        self, seq: int, kind: StepKind, name: str, replayed: bool, started: float
    ) -> None:
        if self._mw.wants(Middleware.after_step):
            await self._mw.after_step(
                StepOutput(
                    self._spec.name,
                    self.event,
                    seq,
                    str(kind),
                    name,
                    replayed,
                    time.monotonic() - started,
                )
            )
