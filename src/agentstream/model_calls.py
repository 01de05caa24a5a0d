"""The model-call pipeline of one event: budget, admission, outage and 429 waits, journal.

A model call (``ctx.llm``, or an SDK call through the journaled HTTP transport) is a journaled
step (:meth:`agentstream.step_journal.StepJournal.run`); when it has to be made:

1. the event's budget is checked (calls, tokens, cost so far, recorded calls included, plus
   the call's estimate): :class:`~agentstream.failures.BudgetExceededError`;
2. the circuit breaker, when the app has one, admits the call (it may wait while the provider
   is out, or route to the agent's fallback model);
3. the ``before_llm_call`` hooks run (admission control waits for capacity there);
4. the provider is called under the claim's lease (an async call is cancelled when the lease
   runs out), then the ``after_llm_call`` hooks;
5. a provider outage (breaker) or a 429 (when admission control is configured,
   ``rate_limit_retry``) is absorbed by waiting and calling again, not as a failed attempt
   of the event: the wait is told to ``on_rate_limit_wait`` and counted in
   ``rate_limit_waits`` / ``outage_waits``;
6. the answer is journaled with its usage, cost and the model that gave it.

Why the budget and the 429 loop are not middleware: the budget counts the event's recorded
steps too, which only the event's journal view knows, and a 429 is retried inside the same
journaled step, with the same position and idempotency key, which a hook around the call
cannot do (a ``before_llm_call`` hook can only wait or veto). Admission, breakers, metrics and
tracing are middleware.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from agentstream.agent import AgentSpec
from agentstream.event import payload_hash
from agentstream.failures import RateLimitedError
from agentstream.journal.blobs import compact_request
from agentstream.journal.records import StepKind, StepRecord
from agentstream.llm.base import LLMProvider, LLMRequest, LLMResponse
from agentstream.llm.breaker import CircuitBreaker
from agentstream.llm.chat_format import chat_body
from agentstream.llm.tokens import estimate_prompt_tokens
from agentstream.middleware import (
    LLMCallInput,
    LLMCallOutput,
    Middleware,
    MiddlewareStack,
    RateLimitWaitInput,
)
from agentstream.step_journal import StepJournal

if TYPE_CHECKING:
    from agentstream.llm.admission import RateLimitRetry

__all__ = ["ModelCalls"]


class ModelCalls:
    """The model calls of one event (one per Context).

    Args:
        steps: The event's journaled steps.
        spec: The agent (name, budget, fallback model).
        provider: The app's LLM provider (None: ``ctx.llm`` fails).
        middleware: Middleware stack.
        recorded: The event's recorded steps (their calls count against the budget).
        rate_limit_retry: How calls answered 429 are retried (None: a 429 fails the attempt).

    Attributes:
        llm_calls: Model calls made during this delivery.
        rate_limit_waits: 429 answers absorbed by waiting during this delivery.
        outage_waits: Provider failures absorbed by waiting (circuit breaker).
    """

    def __init__(
        self,
        steps: StepJournal,
        *,
        spec: AgentSpec,
        provider: LLMProvider | None,
        middleware: MiddlewareStack,
        recorded: tuple[StepRecord, ...],
        rate_limit_retry: RateLimitRetry | None = None,
    ) -> None:
        self._steps = steps
        self._spec = spec
        self._provider = provider
        self._mw = middleware
        self._rate_limit_retry = rate_limit_retry
        self.llm_calls = 0
        self.rate_limit_waits = 0
        self.outage_waits = 0
        self._spent_calls = sum(1 for s in recorded if s.kind == StepKind.LLM)
        self._spent_tokens = sum(int(s.meta.get("total_tokens", 0)) for s in recorded)
        self._spent_cost = sum(float(s.meta.get("cost_usd", 0.0)) for s in recorded)

    async def call_llm(
        self,
        request: LLMRequest,
        *,
        name: str,
        prompt_version: str | None,
        via: LLMProvider | None = None,
    ) -> LLMResponse:
        """A journaled model call (see :meth:`agentstream.Context.call_llm`)."""
        provider = via or self._provider
        answered: dict[int, str] = {}
        lease = self._steps.lease

        async def execute(seq: int) -> Any:
            if provider is None:
                raise RuntimeError(
                    f"agent {self._spec.name!r} called ctx.llm but the app has no LLM provider"
                )
            estimate = estimate_prompt_tokens(chat_body(request))
            self._check_budget(estimate + (request.max_tokens or 0))
            if lease is None:
                response, answered[seq] = await self._call_provider(
                    provider, request, seq, estimate
                )
            else:
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
        value = await self._steps.run(
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
        event = self._steps.event
        agent = self._spec.name
        step_key = f"{agent}/{event.identity}/{seq}"
        retry = self._rate_limit_retry
        breaker = self._mw.find(CircuitBreaker)
        guard = (
            breaker.call(agent, provider, request, self._spec.fallback_model)
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
                    LLMCallInput(agent, event, seq, call, estimate, provider.name)
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
                            agent,
                            event,
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
                RateLimitWaitInput(
                    self._spec.name, self._steps.event, seq, request.model, reason, delay_s
                )
            )

    def _input_hash(self) -> str:
        return payload_hash(self._steps.event.message.value)

    def _check_budget(self, estimate: int) -> None:
        self._spec.budget.check(
            calls=self._spent_calls,
            tokens=self._spent_tokens,
            cost_usd=self._spent_cost,
            next_call_tokens=estimate,
        )
