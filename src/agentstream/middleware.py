"""Middleware: cross-cutting behaviour around every event, step and model call.

A middleware subclasses :class:`Middleware` and overrides the hooks it needs; every hook takes
one frozen ``*Input`` dataclass, so fields can be added without breaking subclasses. Hooks named
``before_*`` run in list order, ``after_*``/``on_*`` in reverse order; ``output_headers``
answers are concatenated in list order. A ``before_*`` hook vetoes work by raising (for
example :class:`~agentstream.failures.BudgetExceededError` from ``before_llm_call``). The
stack only calls hooks a middleware actually overrides, so an unused hook costs nothing on the
hot path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agentstream.outcomes import DeliveryOutcome

if TYPE_CHECKING:
    from agentstream.event import Event, Headers, TopicPartition
    from agentstream.llm_types import LLMRequest, LLMResponse


@dataclass(frozen=True, slots=True)
class WorkerInput:
    """A worker for one agent starting or stopping."""

    agent: str
    group: str
    messaging_system: str = ""
    """The transport's system as OpenTelemetry names it (``kafka``, ``aws_sqs``...)."""


@dataclass(frozen=True, slots=True)
class ProcessInput:
    """An event about to be claimed and processed."""

    agent: str
    event: Event


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    """How one delivery of an event ended.

    Attributes:
        outcome: How it ended (:class:`~agentstream.outcomes.DeliveryOutcome`, a string:
            ``completed``, ``duplicate``, ``dead_lettered``, ``fenced``, ``lease_lost``...).
        failure_class: Failure class when the delivery failed.
        duration_s: Wall time of the delivery.
        llm_calls: Model calls made during this delivery.
        llm_calls_replayed: Model calls answered from the journal during this delivery.
    """

    agent: str
    event: Event
    outcome: DeliveryOutcome
    failure_class: str | None = None
    error: BaseException | None = None
    duration_s: float = 0.0
    llm_calls: int = 0
    llm_calls_replayed: int = 0


@dataclass(frozen=True, slots=True)
class LLMCallInput:
    """A model call about to be made (not called for calls answered from the journal)."""

    agent: str
    event: Event
    seq: int
    request: LLMRequest
    prompt_tokens_estimate: int
    provider: str = ""
    """The provider's name (``openai``, ``anthropic``...)."""


@dataclass(frozen=True, slots=True)
class LLMCallOutput:
    """A model call that returned or failed."""

    agent: str
    event: Event
    seq: int
    request: LLMRequest
    response: LLMResponse | None
    error: BaseException | None
    duration_s: float
    provider: str = ""
    """The provider's name (``openai``, ``anthropic``...)."""


@dataclass(frozen=True, slots=True)
class StepOutput:
    """A journaled step (plain step, effect or LLM call) that finished or was replayed."""

    agent: str
    event: Event
    seq: int
    kind: str
    name: str
    replayed: bool
    duration_s: float
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class RetryInput:
    """An event scheduled for another attempt after a transient failure."""

    agent: str
    event: Event
    attempt: int
    failure_class: str
    error: BaseException
    delay_s: float


@dataclass(frozen=True, slots=True)
class DeadLetterInput:
    """An event that was dead-lettered."""

    agent: str
    event: Event
    failure_class: str
    error: BaseException | None
    dead_letter_id: int


@dataclass(frozen=True, slots=True)
class WaitInput:
    """An event began or ended a wait (``ctx.wait_for`` or ``ctx.sleep``).

    Attributes:
        kind: ``signal`` or ``timer``.
        name: The signal's name (``sleep`` for a timer).
        phase: ``suspended`` (the event now waits), ``signalled`` or ``timed_out`` (a wait
            ended, for a signal wait), ``fired`` (a timer ended).
        waited_s: How long the wait lasted, when it ended.
    """

    agent: str
    event: Event
    kind: str
    name: str
    phase: str
    waited_s: float = 0.0


@dataclass(frozen=True, slots=True)
class CompletedInput:
    """An event whose completion is durable in the journal, before its offset is acknowledged."""

    agent: str
    event: Event
    outputs: int
    result: Any


@dataclass(frozen=True, slots=True)
class NonDeterminismInput:
    """A journaled step asked for with a request that differs from the recorded one."""

    agent: str
    event: Event
    seq: int
    name: str
    recorded_fingerprint: str
    new_fingerprint: str
    policy: str


@dataclass(frozen=True, slots=True)
class PollInput:
    """One turn of the poll loop."""

    agent: str
    fetched: int
    buffered: int
    in_flight: int
    paused: bool
    lag: Mapping[TopicPartition, int | None] | None = None
    """Uncommitted messages per owned partition, refreshed every ``lag_interval_s``."""
    pause_causes: frozenset[str] = frozenset()
    """Why consumption is paused: ``buffer_full``, ``llm_capacity``, ``provider_outage``."""
    waiting: int | None = None
    """Events of the agent waiting in the journal (every worker's), refreshed with ``lag``."""


@dataclass(frozen=True, slots=True)
class RebalanceInput:
    """Partitions (or queues) moved to or away from this worker.

    Attributes:
        change: ``assigned`` or ``revoked``.
        partitions: The partitions that moved.
    """

    agent: str
    group: str
    change: str
    partitions: Sequence[TopicPartition]


@dataclass(frozen=True, slots=True)
class RateLimitWaitInput:
    """A model call that waited for rate-limit capacity instead of failing.

    Attributes:
        reason: ``admission`` (waited for budget, a slot or rate-limit permits before the
            call), ``retry_after`` (answered 429, waiting to call again) or
            ``provider_outage`` (the provider failed or its circuit breaker is open; the call
            waits and is made again).
        delay_s: How long it waited.
    """

    agent: str
    event: Event
    seq: int
    model: str
    reason: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class BreakerChangeInput:
    """A model's circuit breaker changed state (seen by this process).

    Attributes:
        breaker: ``ENDPOINT/MODEL``.
        status: ``closed``, ``open`` or ``half_open``.
        reason: The error that opened it (empty when closed).
    """

    breaker: str
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class LoopStallInput:
    """The worker's event loop did not run for ``stall_s`` (blocking code on the loop).

    Reported by the loop-stall watchdog once the stall has ended.
    """

    agent: str
    stall_s: float


@dataclass(frozen=True, slots=True)
class OutputsInput:
    """An event about to complete with ``outputs`` records (asked for extra output headers)."""

    agent: str
    event: Event
    outputs: int


@dataclass(frozen=True, slots=True)
class OutboxInput:
    """The outbox as the relay last saw it (the ``on_outbox`` middleware hook).

    Attributes:
        pending: Unpublished rows.
        oldest_age_s: Age of the oldest unpublished row (0 when none).
        stalled_s: How long rows have waited with nothing published (0 when publishing).
        healthy: False once stalled for ``publish_unhealthy_s``.
        journal_ok: Whether the journal answered the last backlog read.
    """

    pending: int
    oldest_age_s: float
    stalled_s: float
    healthy: bool
    journal_ok: bool = True


class Middleware:
    """Base class: every hook does nothing. Override the ones you need."""

    async def on_worker_start(self, inp: WorkerInput) -> None:
        """A worker started consuming."""

    async def on_worker_stop(self, inp: WorkerInput) -> None:
        """A worker stopped."""

    async def before_process(self, inp: ProcessInput) -> None:
        """Before an event is claimed."""

    async def after_process(self, inp: ProcessOutcome) -> None:
        """After a delivery ended, whatever the outcome."""

    async def before_llm_call(self, inp: LLMCallInput) -> None:
        """Before a model call; raise to veto it (budgets, admission control)."""

    async def after_llm_call(self, inp: LLMCallOutput) -> None:
        """After a model call returned or failed."""

    async def after_step(self, inp: StepOutput) -> None:
        """After a journaled step finished or was replayed."""

    async def on_retry(self, inp: RetryInput) -> None:
        """An event will be tried again."""

    async def on_dead_letter(self, inp: DeadLetterInput) -> None:
        """An event was dead-lettered."""

    async def after_complete(self, inp: CompletedInput) -> None:
        """Completion is durable; the offset is not yet acknowledged."""

    async def on_wait(self, inp: WaitInput) -> None:
        """An event was suspended at a wait, or a wait ended."""

    async def on_nondeterminism(self, inp: NonDeterminismInput) -> None:
        """A fingerprint mismatch was found on resume."""

    async def on_poll(self, inp: PollInput) -> None:
        """The poll loop fetched a batch (or nothing)."""

    async def on_rate_limit_wait(self, inp: RateLimitWaitInput) -> None:
        """A model call waited for rate-limit capacity (not an attempt of the event)."""

    async def on_rebalance(self, inp: RebalanceInput) -> None:
        """Partitions were assigned to or revoked from this worker."""

    async def on_breaker_change(self, inp: BreakerChangeInput) -> None:
        """A model's circuit breaker opened, went half-open or closed."""

    async def on_loop_stall(self, inp: LoopStallInput) -> None:
        """The event loop was stalled for longer than ``RuntimeConfig.loop_stall_s``."""

    async def on_outbox(self, inp: OutboxInput) -> None:
        """The outbox relay read the backlog (every few seconds)."""

    async def output_headers(self, inp: OutputsInput) -> Headers:
        """Headers to add to every output of the event (trace context, for example)."""
        return ()


_Hook = Callable[[Middleware, Any], Awaitable[Any]]
M = TypeVar("M", bound=Middleware)


def _overrides(mw: Middleware, base: _Hook) -> bool:
    return getattr(type(mw), base.__name__) is not base


_HOOKS: tuple[_Hook, ...] = (
    Middleware.on_worker_start,
    Middleware.on_worker_stop,
    Middleware.before_process,
    Middleware.after_process,
    Middleware.before_llm_call,
    Middleware.after_llm_call,
    Middleware.after_step,
    Middleware.on_retry,
    Middleware.on_dead_letter,
    Middleware.after_complete,
    Middleware.on_wait,
    Middleware.on_nondeterminism,
    Middleware.on_poll,
    Middleware.on_rate_limit_wait,
    Middleware.on_rebalance,
    Middleware.on_breaker_change,
    Middleware.on_loop_stall,
    Middleware.on_outbox,
    Middleware.output_headers,
)


class MiddlewareStack:
    """An ordered list of middleware with typed dispatch.

    Args:
        items: Middleware in order; ``before_*`` hooks run first to last.
    """

    def __init__(self, items: Sequence[Middleware] = ()) -> None:
        self._items: list[Middleware] = list(items)
        self._index: dict[_Hook, list[Middleware]] = {}
        self._reindex()

    def add(
        self,
        middleware: Middleware,
        *,
        before: type[Middleware] | None = None,
        after: type[Middleware] | None = None,
    ) -> None:
        """Insert a middleware, optionally right before or after the first of a given type."""
        if before is not None and after is not None:
            raise ValueError("pass before= or after=, not both")
        anchor = before or after
        position = len(self._items)
        if anchor is not None:
            for i, item in enumerate(self._items):
                if isinstance(item, anchor):
                    position = i if before is not None else i + 1
                    break
            else:
                raise ValueError(f"no middleware of type {anchor.__name__} in the stack")
        self._items.insert(position, middleware)
        self._reindex()

    @property
    def items(self) -> list[Middleware]:
        """The middleware, in order."""
        return list(self._items)

    def find(self, kind: type[M]) -> M | None:
        """The first middleware of a type, if any."""
        return next((m for m in self._items if isinstance(m, kind)), None)

    def _reindex(self) -> None:
        self._index = {hook: [m for m in self._items if _overrides(m, hook)] for hook in _HOOKS}

    def wants(self, hook: _Hook) -> bool:
        """Whether any middleware overrides ``hook`` (lets callers skip building inputs)."""
        return bool(self._index[hook])

    def _order(self, hook: _Hook, reverse: bool) -> list[Middleware]:
        found = self._index[hook]
        return found[::-1] if reverse else found

    async def on_worker_start(self, inp: WorkerInput) -> None:
        """Dispatch ``on_worker_start``."""
        for m in self._order(Middleware.on_worker_start, False):
            await m.on_worker_start(inp)

    async def on_worker_stop(self, inp: WorkerInput) -> None:
        """Dispatch ``on_worker_stop``."""
        for m in self._order(Middleware.on_worker_stop, True):
            await m.on_worker_stop(inp)

    async def before_process(self, inp: ProcessInput) -> None:
        """Dispatch ``before_process``."""
        for m in self._order(Middleware.before_process, False):
            await m.before_process(inp)

    async def after_process(self, inp: ProcessOutcome) -> None:
        """Dispatch ``after_process``."""
        for m in self._order(Middleware.after_process, True):
            await m.after_process(inp)

    async def before_llm_call(self, inp: LLMCallInput) -> None:
        """Dispatch ``before_llm_call``."""
        for m in self._order(Middleware.before_llm_call, False):
            await m.before_llm_call(inp)

    async def after_llm_call(self, inp: LLMCallOutput) -> None:
        """Dispatch ``after_llm_call``."""
        for m in self._order(Middleware.after_llm_call, True):
            await m.after_llm_call(inp)

    async def after_step(self, inp: StepOutput) -> None:
        """Dispatch ``after_step``."""
        for m in self._order(Middleware.after_step, True):
            await m.after_step(inp)

    async def on_retry(self, inp: RetryInput) -> None:
        """Dispatch ``on_retry``."""
        for m in self._order(Middleware.on_retry, True):
            await m.on_retry(inp)

    async def on_dead_letter(self, inp: DeadLetterInput) -> None:
        """Dispatch ``on_dead_letter``."""
        for m in self._order(Middleware.on_dead_letter, True):
            await m.on_dead_letter(inp)

    async def on_wait(self, inp: WaitInput) -> None:
        """Dispatch ``on_wait``."""
        for m in self._order(Middleware.on_wait, True):
            await m.on_wait(inp)

    async def after_complete(self, inp: CompletedInput) -> None:
        """Dispatch ``after_complete``."""
        for m in self._order(Middleware.after_complete, True):
            await m.after_complete(inp)

    async def on_nondeterminism(self, inp: NonDeterminismInput) -> None:
        """Dispatch ``on_nondeterminism``."""
        for m in self._order(Middleware.on_nondeterminism, True):
            await m.on_nondeterminism(inp)

    async def on_poll(self, inp: PollInput) -> None:
        """Dispatch ``on_poll``."""
        for m in self._order(Middleware.on_poll, True):
            await m.on_poll(inp)

    async def on_rate_limit_wait(self, inp: RateLimitWaitInput) -> None:
        """Dispatch ``on_rate_limit_wait``."""
        for m in self._order(Middleware.on_rate_limit_wait, True):
            await m.on_rate_limit_wait(inp)

    async def on_outbox(self, inp: OutboxInput) -> None:
        """Dispatch ``on_outbox``."""
        for m in self._order(Middleware.on_outbox, True):
            await m.on_outbox(inp)

    async def on_breaker_change(self, inp: BreakerChangeInput) -> None:
        """Dispatch ``on_breaker_change``."""
        for m in self._order(Middleware.on_breaker_change, True):
            await m.on_breaker_change(inp)

    async def on_loop_stall(self, inp: LoopStallInput) -> None:
        """Dispatch ``on_loop_stall``."""
        for m in self._order(Middleware.on_loop_stall, True):
            await m.on_loop_stall(inp)

    async def on_rebalance(self, inp: RebalanceInput) -> None:
        """Dispatch ``on_rebalance``."""
        for m in self._order(Middleware.on_rebalance, True):
            await m.on_rebalance(inp)

    async def output_headers(self, inp: OutputsInput) -> Headers:
        """Dispatch ``output_headers``: every answer, in list order."""
        out: list[tuple[str, bytes]] = []
        for m in self._order(Middleware.output_headers, False):
            out.extend(await m.output_headers(inp))
        return tuple(out)
