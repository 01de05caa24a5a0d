"""The Context an agent runs with: journaled model calls, steps, effects and waits.

``Context`` is the one object a handler sees; it holds the event's pieces and delegates:

- :mod:`agentstream.step_journal`: every journaled call (``ctx.step``, ``ctx.now``...) is a
  step of ``(agent, event identity)`` identified by a stable key (:mod:`agentstream.steps`),
  so concurrent steps replay whatever order they finish in. A step whose record exists returns
  the recorded result; its request fingerprint must match the recorded one, or the agent's
  non-determinism policy decides (one path for every kind of step);
- :mod:`agentstream.effects`: ``ctx.effect``, the intent ledger;
- :mod:`agentstream.model_calls`: ``ctx.llm``, the model-call pipeline (budget, breaker,
  admission, the 429 wait loop);
- :mod:`agentstream.wait_steps`: ``ctx.wait_for`` and ``ctx.sleep``; signals go out through
  :func:`agentstream.journal.signals.send_signal`;
- :mod:`agentstream.answers`: what a replay answers for a step with no record.

Results cross a JSON round trip on the live path too (validated back into the function's
return annotation), so live and resumed executions see identical values. User callables (step
functions, effects, reconcile) run through :class:`~agentstream.usercode.UserCode`: sync ones
in a thread pool, never on the event loop. Under a worker's lease, no journaled step starts
once the claim is lost or about to run out (``LeaseLostError``), and an async model call, step
or effect in flight is cancelled when the lease runs out under it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from agentstream import wait_steps
from agentstream.agent import AgentSpec
from agentstream.answers import RecordedAnswers
from agentstream.codec import return_adapter, to_jsonable
from agentstream.effects import DEFAULT_EFFECT_TIMEOUT_S, Effects
from agentstream.event import Event, Headers, OutgoingRecord, headers_from_mapping
from agentstream.failures import AgentStreamError
from agentstream.journal.outage import OutageLog
from agentstream.journal.records import StepKind, StepRecord
from agentstream.journal.signals import send_signal
from agentstream.journal.waits import SignalReceipt, WaitJournal
from agentstream.llm.client import LLMClient
from agentstream.middleware import MiddlewareStack
from agentstream.model_calls import ModelCalls
from agentstream.outputs import Emitted, build_outputs
from agentstream.step_journal import ClaimLease, StepJournal
from agentstream.usercode import UserCode, is_async_callable

if TYPE_CHECKING:
    from agentstream.journal.store import EventJournal
    from agentstream.llm.admission import RateLimitRetry
    from agentstream.llm.base import LLMProvider, LLMRequest, LLMResponse

__all__ = ["Context"]

T = TypeVar("T")


class Context:
    """What an agent's handler receives as ``ctx``.

    A model call answered 429 is called again after the provider's ``Retry-After`` when the
    app has admission control (``rate_limit_retry``): the wait is counted in
    ``rate_limit_waits``, not as a failed attempt of the event.

    Attributes:
        event: The event being processed (identity, key, source message, payload).
        attempt: This processing attempt, from 1 (durable across restarts).
        llm: Journaled model calls (``await ctx.llm(...)``, ``ctx.llm.parse(...)``).
        issued_keys: Idempotency keys this delivery derived (recorded with a dead letter).
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
        self.attempt = attempt
        self._spec = spec
        self._store = store
        self._user = user_code or UserCode()
        self._emitted: list[Emitted] = []
        self.issued_keys: list[str] = []
        self._steps = StepJournal(
            agent=spec.name,
            event=event,
            store=store,
            epoch=epoch,
            recorded=recorded,
            middleware=middleware,
            policy=spec.nondeterminism,
            clock=clock,
            answers=answers,
            lease=lease,
            journal_outage=journal_outage,
        )
        self._effects = Effects(self._steps, self._user)
        self._model = ModelCalls(
            self._steps,
            spec=spec,
            provider=provider,
            middleware=middleware,
            recorded=recorded,
            rate_limit_retry=rate_limit_retry,
        )
        self.llm = LLMClient(self._model, model=spec.model, prompt_version=spec.prompt_version)

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

    @property
    def llm_calls(self) -> int:
        """Model calls made during this delivery."""
        return self._model.llm_calls

    @property
    def llm_calls_replayed(self) -> int:
        """Model calls answered from the journal during this delivery."""
        return self._steps.llm_calls_replayed

    @property
    def rate_limit_waits(self) -> int:
        """429 answers absorbed by waiting during this delivery."""
        return self._model.rate_limit_waits

    @property
    def outage_waits(self) -> int:
        """Provider failures absorbed by waiting (circuit breaker) during this delivery."""
        return self._model.outage_waits

    @property
    def mismatches(self) -> list[dict[str, Any]]:
        """Steps whose request differed from the recorded one (the executor journals them)."""
        return self._steps.mismatches

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
        lease = self._steps.lease

        def execute(_seq: int) -> Awaitable[Any]:
            call = self._user.call(fn, *args, **kwargs)
            # An async step can be cut off when the lease runs out; a thread cannot.
            if lease is not None and is_async_callable(fn):
                return lease.bound(lambda: call)
            return call

        value = await self._steps.run(StepKind.STEP, name, request, execute, meta={}, key=key)
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
        answered, value = await self._effects.run(
            name,
            fn,
            args,
            kwargs,
            idempotency_key=idem_key,
            reconcile=reconcile,
            idempotent=idempotent,
            key=key,
            timeout=timeout,
        )
        if not answered:  # shadow replay: the effect is suppressed, never executed
            return None  # type: ignore[return-value]
        adapter = return_adapter(fn)
        return value if adapter is None else adapter.validate_python(value)  # type: ignore[no-any-return]

    async def wait_for(
        self,
        name: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109  (the wait's deadline)
        schema: Any = None,
        default: Any = wait_steps.MISSING,
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
        return await wait_steps.wait_for(
            self._steps, name, timeout=timeout, schema=schema, default=default
        )

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
        await wait_steps.sleep(self._steps, seconds)

    async def now(self) -> float:
        """Wall-clock seconds, recorded once per event (replay-safe)."""

        async def read(_seq: int) -> float:
            return time.time()

        value: float = await self._steps.run(StepKind.STEP, "now", None, read, meta={})
        return value

    async def uuid(self) -> str:
        """A random UUID, recorded once per event (replay-safe)."""

        async def make(_seq: int) -> str:
            return str(uuid.uuid4())

        value: str = await self._steps.run(StepKind.STEP, "uuid", None, make, meta={})
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
        return await self._model.call_llm(
            request, name=name, prompt_version=prompt_version, via=via
        )
