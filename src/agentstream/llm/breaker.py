"""Circuit breakers: a provider outage holds the calls, not the events' attempts.

:class:`CircuitBreaker` keeps one breaker per model on each provider endpoint (state machine
and storage in :mod:`agentstream.llm.breaker_state`, shared by every worker of a journal).
Each model call goes through a :class:`GuardedCall`:

1. :meth:`GuardedCall.admit` waits while the model's breaker is open; once its open time is
   over, one call (in all processes) goes through as the half-open probe. An agent with a
   ``fallback_model`` sends its call to the fallback instead while the fallback's breaker is
   closed.
2. :meth:`GuardedCall.record` counts the outcome. A connection failure, timeout or 5xx is the
   provider's, not the event's: the call waits and is made again, and the event spends no
   attempt, while the breaker is open or the failures have not yet reached its threshold. A
   call that keeps failing while the breaker stays closed (the provider answers everyone else)
   fails as the event's own transient error. Any answer, including a 4xx or 429, means the
   provider is up and closes the breaker.

While a call of an agent waits on an open breaker, :meth:`CircuitBreaker.should_pause` holds
the agent's consumption (the worker's consumption gate, as admission control does): lag grows,
partitions stay assigned, polling continues. Every state change is one log line and a
``on_breaker_change`` middleware hook (metrics).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from agentstream.failures import ProviderTimeout, ProviderUnavailable
from agentstream.journal.outage import OutageLog
from agentstream.llm.breaker_state import (
    BreakerPolicy,
    BreakerState,
    BreakerStatus,
    BreakerStore,
    LocalBreakers,
    on_admit,
    on_failure,
    on_success,
)
from agentstream.llm.shared_stores import breakers_for_store
from agentstream.middleware import BreakerChangeInput, Middleware, MiddlewareStack

if TYPE_CHECKING:
    from agentstream.journal.store import Store
    from agentstream.llm.base import LLMProvider, LLMRequest, LLMResponse

__all__ = ["CircuitBreaker", "GuardedCall", "endpoint_of", "is_outage"]

log = logging.getLogger("agentstream.breaker")

R = TypeVar("R")

_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    ProviderUnavailable,
    ProviderTimeout,
    ConnectionError,
    TimeoutError,
)


def is_outage(error: BaseException) -> bool:
    """Whether an error says the provider is unreachable or failing (not the request)."""
    return isinstance(error, _OUTAGE_ERRORS)


def endpoint_of(provider: LLMProvider, model: str) -> str:
    """The endpoint a provider sends a model's calls to.

    A provider's ``endpoint_for(model)`` when it routes models, else its ``endpoint``, else its
    name.
    """
    route = getattr(provider, "endpoint_for", None)
    if callable(route):
        return str(route(model))
    return str(getattr(provider, "endpoint", None) or provider.name)


@dataclass
class _Cached:
    state: BreakerState
    fetched: float


@dataclass
class GuardedCall:
    """One journaled model call passing through the breakers (see :meth:`CircuitBreaker.call`).

    Attributes:
        request: The call as the agent asked for it.
        fallback: The agent's fallback model, if any.
        answered_by: The model the last admitted call went to.
        outage_waits: Times the call waited for the provider instead of failing.
    """

    breaker: CircuitBreaker
    agent: str
    provider: LLMProvider
    request: LLMRequest
    fallback: str | None = None
    answered_by: str = ""
    outage_waits: int = 0
    _name: str = ""
    _closed_failures: int = 0
    _waited_s: float = field(default=0.0)

    async def admit(self) -> LLMRequest:
        """Wait until the model (or the fallback) may be called; return the call to make."""
        b = self.breaker
        primary = b.name_of(self.provider, self.request.model)
        secondary = b.name_of(self.provider, self.fallback) if self.fallback else None
        started = time.monotonic()
        token = object()
        try:
            while True:
                wait = await b.try_admit(primary)
                if wait is None:
                    self._name, self.answered_by = primary, self.request.model
                    return self.request
                if (
                    secondary is not None
                    and self.fallback is not None
                    and await b.try_admit(secondary) is None
                ):
                    self._name, self.answered_by = secondary, self.fallback
                    return self.request.model_copy(update={"model": self.fallback})
                b.waiting[self.agent][token] = started
                await asyncio.sleep(min(wait, b.refresh_s) + random.uniform(0, 0.05))
        finally:
            b.waiting[self.agent].pop(token, None)
            self._waited_s = time.monotonic() - started

    @property
    def waited_s(self) -> float:
        """How long the last :meth:`admit` waited."""
        return self._waited_s

    async def record(
        self, response: LLMResponse | None, error: BaseException | None
    ) -> float | None:
        """Count the call's outcome.

        Returns:
            None when the outcome stands (an answer, or an error of the event's own), else the
            seconds to wait before admitting the call again (the provider's failure).
        """
        b = self.breaker
        if response is not None or error is None or not is_outage(error):
            await b.succeeded(self._name)
            return None
        state = await b.failed(self._name, error)
        if state.status != BreakerStatus.CLOSED:
            self.outage_waits += 1
            return 0.0
        self._closed_failures += 1
        if self._closed_failures >= b.policy.threshold:
            return None  # it keeps failing while others get answers: the event's failure
        self.outage_waits += 1
        return b.retry_delay_s * random.uniform(0.5, 1.5)


class CircuitBreaker(Middleware):
    """Circuit breakers per model and provider endpoint (see the module docstring).

    Args:
        policy: When a breaker opens and for how long.
        shared: Where state lives: ``"journal"`` (the App's journal database, shared by every
            worker process), ``"local"`` (this process) or a
            :class:`~agentstream.llm.breaker_state.BreakerStore`.
        refresh_s: How often a waiting call (or a closed breaker's cached state) is checked
            against the shared state.
        retry_delay_s: Wait before calling again after a failure that has not (yet) opened the
            breaker.
        clock: Wall-clock seconds (state is compared across processes).
    """

    pause_cause = "provider_outage"
    """What the worker reports as the cause while this gate holds consumption."""

    def __init__(
        self,
        policy: BreakerPolicy | None = None,
        *,
        shared: str | BreakerStore = "journal",
        refresh_s: float = 0.5,
        retry_delay_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(shared, str) and shared not in ("journal", "local"):
            raise ValueError("shared must be 'journal', 'local' or a BreakerStore")
        self.policy = policy or BreakerPolicy()
        self._shared = shared
        self.refresh_s = refresh_s
        self.retry_delay_s = retry_delay_s
        self._clock = clock
        self.store: BreakerStore = shared if not isinstance(shared, str) else LocalBreakers()
        self._cache: dict[str, _Cached] = {}
        self._stack: MiddlewareStack | None = None
        self.waiting: dict[str, dict[object, float]] = collections.defaultdict(dict)
        self._outage = OutageLog("model breaker state (in the journal)", log)

    # -- lifecycle -----------------------------------------------------------------------------

    def bind(self, stack: MiddlewareStack) -> None:
        """The stack that hears about state changes (``on_breaker_change``)."""
        self._stack = stack

    async def start(self, store: Store | None) -> None:
        """Bind to the App's journal (for shared state) before workers start."""
        if isinstance(self._shared, str):
            self.store = breakers_for_store(store) if self._shared == "journal" else LocalBreakers()
        await self.store.open()
        self._cache.clear()

    async def stop(self) -> None:
        """Release the state store after the workers stopped."""
        await self.store.close()

    # -- calls ---------------------------------------------------------------------------------

    def name_of(self, provider: LLMProvider, model: str) -> str:
        """The breaker of a model on the provider's endpoint."""
        return f"{endpoint_of(provider, model)}/{model}"

    def call(
        self, agent: str, provider: LLMProvider, request: LLMRequest, fallback: str | None
    ) -> GuardedCall:
        """Guard one model call of ``agent``."""
        return GuardedCall(self, agent, provider, request, fallback)

    def state(self, name: str) -> BreakerState | None:
        """This process's latest view of a breaker (None: not used yet)."""
        cached = self._cache.get(name)
        return cached.state if cached is not None else None

    async def try_admit(self, name: str) -> float | None:
        """None when a call may go to this breaker's model now, else seconds to wait."""
        cached = self._cache.get(name)
        now = time.monotonic()
        if cached is None or now - cached.fetched > self.refresh_s:
            state = await self._read(name)
            self._note(name, state)
            cached = self._cache[name]
        state = cached.state
        if state.status == BreakerStatus.CLOSED:
            return None
        now = self._clock()
        if state.status == BreakerStatus.OPEN and now < state.open_until:
            return state.open_until - now
        if state.status == BreakerStatus.HALF_OPEN and now < state.probe_until:
            return state.probe_until - now
        policy, clock = self.policy, self._clock
        wait, state = await self._update(name, lambda s: on_admit(s, policy, clock()))
        self._note(name, state)
        return wait

    async def succeeded(self, name: str) -> None:
        """An answer came: close the breaker if it was counting failures or open."""
        cached = self._cache.get(name)
        if (
            cached is not None
            and cached.state.status == BreakerStatus.CLOSED
            and cached.state.failures == 0
        ):
            return
        _, state = await self._update(name, on_success)
        self._note(name, state)

    async def failed(self, name: str, error: BaseException) -> BreakerState:
        """A provider failure: count it (it may open the breaker); return the new state."""
        policy, clock = self.policy, self._clock
        reason = f"{type(error).__name__}: {error}"
        _, state = await self._update(name, lambda s: on_failure(s, policy, clock(), reason))
        self._note(name, state)
        return state

    async def _read(self, name: str) -> BreakerState:
        """The shared state, or this process's view while the journal is unavailable."""
        try:
            state = (await self.store.read([name]))[name]
        except Exception as exc:  # the breaker must never fail a call because of its storage
            self._outage.failed(exc)
            cached = self._cache.get(name)
            return replace(cached.state) if cached is not None else BreakerState()
        self._outage.ok()
        return state

    async def _update(
        self, name: str, change: Callable[[BreakerState], R]
    ) -> tuple[R, BreakerState]:
        """Change the shared state; while the journal is unavailable, this process's view."""
        try:
            result = await self.store.update(name, change)
        except Exception as exc:
            self._outage.failed(exc)
            cached = self._cache.get(name)
            state = replace(cached.state) if cached is not None else BreakerState()
            return change(state), state
        self._outage.ok()
        return result

    def _note(self, name: str, state: BreakerState) -> None:
        before = self._cache.get(name)
        self._cache[name] = _Cached(state, time.monotonic())
        unchanged = before.state.status == state.status if before is not None else False
        if unchanged or (before is None and state.status == BreakerStatus.CLOSED):
            return
        # One line when the outage starts and one when it ends; probes in between are debug.
        if state.status == BreakerStatus.OPEN:
            log.log(
                logging.WARNING if state.trips == 1 else logging.DEBUG,
                "model breaker %s open: %s; calls wait for the provider (probe in %.1fs), "
                "consumption of the agents using it pauses",
                name,
                state.reason,
                max(0.0, state.open_until - self._clock()),
            )
        elif state.status == BreakerStatus.HALF_OPEN:
            log.debug("model breaker %s half-open: one call probes the provider", name)
        else:
            opened = before.state.opened_at if before is not None else 0.0
            down = f" (it was open {self._clock() - opened:.1f}s)" if opened else ""
            log.warning("model breaker %s closed: the provider answers again%s", name, down)
        if self._stack is not None and self._stack.wants(Middleware.on_breaker_change):
            change = BreakerChangeInput(name, str(state.status), state.reason)
            task = asyncio.get_running_loop().create_task(self._stack.on_breaker_change(change))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # -- consumption gate ----------------------------------------------------------------------

    def should_pause(self, agent: str) -> bool:
        """True while a model call of ``agent`` waits on an open breaker."""
        return bool(self.waiting.get(agent))

    def pause_reason(self, agent: str) -> str | None:
        """Why the agent's consumption is held, if it is."""
        if not self.should_pause(agent):
            return None
        open_ = [
            f"{name} {c.state.status}"
            for name, c in self._cache.items()
            if c.state.status != BreakerStatus.CLOSED
        ]
        return "model breaker " + (", ".join(open_) or "open")
