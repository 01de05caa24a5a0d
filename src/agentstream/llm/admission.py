"""Admission control: model calls wait for permits instead of failing on 429.

:class:`AdmissionControl` is a middleware. Before each model call (``before_llm_call``) it
waits, in this order, for

1. the agent's spend budget (``SpendLimit``: US dollars per period, shared by every process);
2. a concurrency slot for the model (AIMD, :mod:`agentstream.llm.aimd`);
3. the model's requests-per-minute and tokens-per-minute buckets
   (:mod:`agentstream.llm.buckets`), taking one request and the estimated tokens (the prompt
   estimate plus ``max_tokens``, or the model's running average completion).

After the call (``after_llm_call``) it gives the slot back, reconciles the token and cost
estimates with the reported usage, learns limits from ``x-ratelimit-*`` headers when none were
configured, and on a 429 refunds the call, blocks the model's buckets until the provider's
``Retry-After`` for every process, and halves the concurrency limit.

A 429 that still happens is not an event failure: the context calls the model again after the
wait (:class:`RateLimitRetry`), counting a rate-limit wait, so a 429 storm costs time and never
attempts or dead letters. While an agent's calls wait long (a cool-down, a spent budget, a queue
of callers), :meth:`AdmissionControl.should_pause` tells the worker to pause consumption: lag
grows, nothing is dropped, and consumption resumes when capacity returns.

Bucket state is shared through the journal's database (:func:`buckets_for_store`), so N worker
processes share one quota.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentstream.failures import RateLimitedError
from agentstream.journal.outage import OutageLog
from agentstream.llm.aimd import AdaptiveConcurrency
from agentstream.llm.base import RateLimitSnapshot, Usage
from agentstream.llm.buckets import BucketSpec, BucketStore, LocalBuckets, Take
from agentstream.llm.pricing import PriceTable
from agentstream.llm.shared_stores import buckets_for_store
from agentstream.middleware import LLMCallInput, LLMCallOutput, Middleware

if TYPE_CHECKING:
    from agentstream.journal.store import Store

__all__ = [
    "AdmissionControl",
    "AdmissionStats",
    "ModelLimits",
    "RateLimitRetry",
    "SpendLimit",
]

log = logging.getLogger("agentstream.admission")

_CallKey = tuple[str, str, int]


@dataclass(frozen=True)
class ModelLimits:
    """Limits of one model (or a family of models, by name prefix).

    Attributes:
        rpm: Requests per minute (None: unknown; learned from headers if the provider sends
            them).
        tpm: Tokens per minute (prompt plus completion).
        burst: Share of a window's quota usable at once; the refill rate is lowered by the same
            amount, so no sliding window exceeds the limit.
        window_s: The period ``rpm`` and ``tpm`` count over: 60 seconds as providers define
            them (change it only for a provider whose limits use another window).
        initial_concurrency: Calls in flight per process at start.
        min_concurrency: Fewest calls in flight the AIMD limit may shrink to.
        max_concurrency: Most calls in flight per process.
    """

    rpm: float | None = None
    tpm: float | None = None
    burst: float = 0.05
    window_s: float = 60.0
    initial_concurrency: int = 8
    min_concurrency: int = 1
    max_concurrency: int = 256

    def __post_init__(self) -> None:
        if not 0 < self.burst < 1:
            raise ValueError("ModelLimits.burst must be between 0 and 1")


@dataclass(frozen=True)
class SpendLimit:
    """An agent's spend budget: at most ``usd`` per ``period_s`` (an hour by default).

    The whole budget can be spent at once; after that, calls wait (and consumption pauses)
    while the budget refills at ``usd / period_s`` per second.
    """

    usd: float
    period_s: float = 3600.0


@dataclass(frozen=True)
class RateLimitRetry:
    """How a 429 that got past admission is retried at the call site.

    Attributes:
        max_wait_s: Longest total rate-limit wait for one call before it fails as a transient
            error of the event (None: wait as long as it takes).
        default_delay_s: Wait when the provider sent no ``Retry-After``.
        jitter: Up to this share is added to each wait, so callers do not return in step.
    """

    max_wait_s: float | None = None
    default_delay_s: float = 1.0
    jitter: float = 0.2

    def delay(self, exc: RateLimitedError, rng: random.Random | None = None) -> float:
        """Seconds to wait before calling again."""
        base = exc.retry_after if exc.retry_after is not None else self.default_delay_s
        return max(0.0, base) * (1.0 + (rng or random).uniform(0.0, self.jitter))


@dataclass
class AdmissionStats:
    """Counters of admission control in this process.

    Attributes:
        admitted: Calls admitted.
        rate_limited: 429 answers seen.
        waits: Calls that waited for a permit (budget, slot, bucket or cool-down).
        wait_s: Total time spent waiting for permits.
        estimated_tokens: Tokens estimated before calls.
        used_tokens: Tokens reported by providers.
        spent_usd: Cost reported by providers.
    """

    admitted: int = 0
    rate_limited: int = 0
    waits: int = 0
    wait_s: float = 0.0
    estimated_tokens: int = 0
    used_tokens: int = 0
    spent_usd: float = 0.0


@dataclass
class _Permit:
    model: str
    takes: list[Take]
    spend: Take | None
    tokens: float


@dataclass
class _Model:
    name: str
    limits: ModelLimits
    concurrency: AdaptiveConcurrency
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    completion_avg: float | None = None
    blocked_until: float = 0.0
    cooldown_until: float = 0.0


def _pick(table: Mapping[str, ModelLimits], model: str) -> ModelLimits | None:
    if model in table:
        return table[model]
    best = max((m for m in table if m != "*" and model.startswith(m)), key=len, default=None)
    return table[best] if best is not None else table.get("*")


class AdmissionControl(Middleware):
    """Admission control for model calls (see the module docstring).

    Args:
        limits: Per-model limits by exact name, longest name prefix, or ``"*"`` for all.
        spend: Per-agent spend budgets by agent name (``"*"``: each agent), as
            :class:`SpendLimit` or US dollars per hour.
        shared: Where bucket state lives: ``"journal"`` (the App's journal database, shared
            by every worker process), ``"local"`` (this process only), or a
            :class:`~agentstream.llm.buckets.BucketStore`.
        prices: Price table for spend estimates.
        learn_from_headers: Take RPM/TPM limits from ``x-ratelimit-*`` headers for models with
            none configured.
        pause_after_s: Ask the worker to pause consumption once an agent's oldest call has
            waited this long for a permit, or a cool-down or spent budget lasts longer.
        max_wait_s: Longest wait for one call (permits and 429 retries) before it fails as a
            transient error of the event; None waits as long as it takes.
        default_completion_tokens: Completion estimate for a model until calls have been seen.
        scope: Prefix of shared bucket names (separate quotas, e.g. per API key).
        clock: Wall-clock seconds (shared buckets compare times across processes).
    """

    def __init__(
        self,
        limits: Mapping[str, ModelLimits] | None = None,
        *,
        spend: Mapping[str, SpendLimit | float] | None = None,
        shared: str | BucketStore = "journal",
        prices: PriceTable | None = None,
        learn_from_headers: bool = True,
        pause_after_s: float = 2.0,
        max_wait_s: float | None = None,
        default_completion_tokens: int = 128,
        scope: str = "llm",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(shared, str) and shared not in ("journal", "local"):
            raise ValueError("shared must be 'journal', 'local' or a BucketStore")
        self._configured = dict(limits or {})
        self._spend = {
            agent: v if isinstance(v, SpendLimit) else SpendLimit(float(v))
            for agent, v in (spend or {}).items()
        }
        self._shared = shared
        self._prices = prices or PriceTable()
        self._learn = learn_from_headers
        self.pause_after_s = pause_after_s
        self.retry = RateLimitRetry(max_wait_s=max_wait_s)
        self._default_completion = default_completion_tokens
        self._scope = scope
        self._clock = clock
        self._buckets: BucketStore = shared if not isinstance(shared, str) else LocalBuckets()
        self._learned: dict[str, ModelLimits] = {}
        self._models: dict[str, _Model] = {}
        self._spend_locks: dict[str, asyncio.Lock] = {}
        self._spend_blocked: dict[str, float] = {}
        self._permits: dict[_CallKey, _Permit] = {}
        self._waiting: dict[str, dict[_CallKey, float]] = collections.defaultdict(dict)
        self._agent_models: dict[str, set[str]] = collections.defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = AdmissionStats()
        self._outage = OutageLog("rate-limit buckets (in the journal)", log)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, store: Store | None) -> None:
        """Bind to the App's journal (for shared buckets) before workers start."""
        if isinstance(self._shared, str):
            self._buckets = (
                buckets_for_store(store) if self._shared == "journal" else LocalBuckets()
            )
        await self._buckets.open()
        self._loop = None
        self._bind_loop()

    async def stop(self) -> None:
        """Release the bucket store (its connections) after the workers stopped."""
        await self._buckets.close()

    def _bind_loop(self) -> None:
        """Start per-loop state afresh when used from another event loop (locks bind to one)."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        self._loop = loop
        self._models.clear()
        self._spend_locks.clear()
        self._permits.clear()
        self._waiting.clear()

    @property
    def buckets(self) -> BucketStore:
        """Where bucket state lives."""
        return self._buckets

    # -- limits --------------------------------------------------------------------------------

    def limits_for(self, model: str) -> ModelLimits:
        """The effective limits of a model: configured, else learned, else none."""
        configured = _pick(self._configured, model) or ModelLimits()
        learned = self._learned.get(model)
        if learned is None:
            return configured
        return ModelLimits(
            rpm=configured.rpm if configured.rpm is not None else learned.rpm,
            tpm=configured.tpm if configured.tpm is not None else learned.tpm,
            burst=configured.burst,
            window_s=configured.window_s,
            initial_concurrency=configured.initial_concurrency,
            min_concurrency=configured.min_concurrency,
            max_concurrency=configured.max_concurrency,
        )

    def _model(self, name: str) -> _Model:
        state = self._models.get(name)
        if state is None:
            lim = self.limits_for(name)
            state = self._models[name] = _Model(
                name,
                lim,
                AdaptiveConcurrency(
                    initial=lim.initial_concurrency,
                    minimum=lim.min_concurrency,
                    maximum=lim.max_concurrency,
                ),
            )
        return state

    def _request_bucket(self, m: _Model) -> BucketSpec | None:
        if m.limits.rpm is None:
            return None
        return BucketSpec.per_window(
            f"{self._scope}:{m.name}:requests", m.limits.rpm, m.limits.burst, m.limits.window_s
        )

    def _token_bucket(self, m: _Model) -> BucketSpec | None:
        if m.limits.tpm is None:
            return None
        return BucketSpec.per_window(
            f"{self._scope}:{m.name}:tokens", m.limits.tpm, m.limits.burst, m.limits.window_s
        )

    def _spend_limit(self, agent: str) -> SpendLimit | None:
        return self._spend.get(agent) or self._spend.get("*")

    def _spend_bucket(self, agent: str, limit: SpendLimit) -> BucketSpec:
        return BucketSpec.per_period(f"{self._scope}:spend:{agent}", limit.usd, limit.period_s)

    # -- hooks ---------------------------------------------------------------------------------

    def _completion_estimate(self, m: _Model, request_max: int | None) -> int:
        return request_max or round(m.completion_avg or self._default_completion)

    async def before_llm_call(self, inp: LLMCallInput) -> None:
        """Wait for budget, a concurrency slot and rate-limit permits."""
        self._bind_loop()
        key: _CallKey = (inp.agent, inp.event.identity, inp.seq)
        m = self._model(inp.request.model)
        agent, prompt = inp.agent, inp.prompt_tokens_estimate
        self._agent_models[agent].add(m.name)
        started = time.monotonic()
        waiting = self._waiting[agent]
        waiting[key] = started
        waited = False
        spend: list[Take] = []
        takes: list[Take] = []

        # Estimates are recomputed whenever a wait ends: a call that queued before any answer
        # was seen should not keep the cold-start guess of the completion size.
        def spend_takes() -> list[Take]:
            limit = self._spend_limit(agent)
            completion = self._completion_estimate(m, inp.request.max_tokens)
            cost = self._prices.quote(
                m.name, Usage(prompt_tokens=prompt, completion_tokens=completion)
            )
            if limit is None or cost is None or cost <= 0:
                return []
            return [Take(self._spend_bucket(agent, limit), cost)]

        def model_takes() -> list[Take]:
            tokens = prompt + self._completion_estimate(m, inp.request.max_tokens)
            pairs = ((self._request_bucket(m), 1.0), (self._token_bucket(m), float(tokens)))
            return [Take(b, amount) for b, amount in pairs if b is not None]

        def note_spend(until: float) -> None:
            self._spend_blocked[agent] = until

        try:
            lock = self._spend_locks.setdefault(agent, asyncio.Lock())
            waited, spend = await self._take(lock, spend_takes, note_spend, started)
            waited |= m.concurrency.would_wait
            await m.concurrency.acquire()
            try:
                model_waited, takes = await self._take_model(m, model_takes, started)
                waited |= model_waited
            except BaseException:
                m.concurrency.release()
                raise
        except BaseException:
            if spend:
                with contextlib.suppress(Exception):
                    await self._buckets.give(spend, self._clock())
            raise
        finally:
            waiting.pop(key, None)
            if waited:
                self.stats.waits += 1
                self.stats.wait_s += time.monotonic() - started
        tokens = float(prompt + self._completion_estimate(m, inp.request.max_tokens))
        tokens = next((t.amount for t in takes if t.bucket.name.endswith(":tokens")), tokens)
        self.stats.admitted += 1
        self.stats.estimated_tokens += int(tokens)
        self._permits[key] = _Permit(m.name, takes, spend[0] if spend else None, tokens)

    async def _take_model(
        self, m: _Model, make_takes: Callable[[], list[Take]], started: float
    ) -> tuple[bool, list[Take]]:
        waited = False
        async with m.lock:
            delay = m.cooldown_until - self._clock()
            if delay > 0:
                waited = True
                self._check_wait(started, delay)
                await asyncio.sleep(delay)

            def note_model(until: float) -> None:
                m.blocked_until = until

            took_wait, takes = await self._take(None, make_takes, note_model, started)
        return waited or took_wait, takes

    async def _take(
        self,
        lock: asyncio.Lock | None,
        make_takes: Callable[[], list[Take]],
        note_blocked: Callable[[float], None],
        started: float,
    ) -> tuple[bool, list[Take]]:
        """Take from the buckets, waiting as long as they say.

        Returns:
            Whether it waited, and what was taken.
        """
        async with lock if lock is not None else contextlib.nullcontext():
            waited = False
            while True:
                takes = make_takes()
                if not takes:
                    return waited, takes
                now = self._clock()
                try:
                    wait = await self._buckets.take(takes, now)
                except Exception as exc:  # shared buckets unavailable: admit, do not fail
                    self._outage.failed(exc)
                    wait = 0.0
                else:
                    self._outage.ok()
                note_blocked(now + wait if wait > 0 else 0.0)
                if wait <= 0:
                    return waited, takes
                waited = True
                self._check_wait(started, wait)
                # Re-check at least every second: refunds from finished calls (and other
                # processes) can make room before the computed wait is over.
                await asyncio.sleep(min(wait, 1.0) + 0.001)

    async def _quietly(self, update: Awaitable[None]) -> None:
        """A bucket correction after a call; lost (logged once) while the journal is down."""
        try:
            await update
        except Exception as exc:
            self._outage.failed(exc)
        else:
            self._outage.ok()

    def _check_wait(self, started: float, wait: float) -> None:
        limit = self.retry.max_wait_s
        if limit is not None and time.monotonic() - started + wait > limit:
            raise RateLimitedError(
                f"admission wait would exceed max_wait_s={limit}s", retry_after=wait
            )

    async def after_llm_call(self, inp: LLMCallOutput) -> None:
        """Release the slot, reconcile estimates, and react to 429s and rate-limit headers."""
        permit = self._permits.pop((inp.agent, inp.event.identity, inp.seq), None)
        if permit is None:
            return
        m = self._model(permit.model)
        now = self._clock()
        response, error = inp.response, inp.error
        if response is not None:
            m.concurrency.release(latency_s=inp.duration_s)
            usage = response.usage
            self.stats.used_tokens += usage.total_tokens
            self.stats.spent_usd += response.cost_usd
            if usage.completion_tokens:
                avg = m.completion_avg
                m.completion_avg = (
                    usage.completion_tokens
                    if avg is None
                    else 0.9 * avg + 0.1 * usage.completion_tokens
                )
            gives = [
                Take(t.bucket, permit.tokens - usage.total_tokens)
                for t in permit.takes
                if t.bucket.name.endswith(":tokens")
            ]
            if permit.spend is not None:
                gives.append(Take(permit.spend.bucket, permit.spend.amount - response.cost_usd))
            elif response.cost_usd > 0 and (limit := self._spend_limit(inp.agent)) is not None:
                # Nothing was estimated (an alias no price source knows) but the provider
                # reported a cost: the spend budget is charged after the fact.
                gives.append(Take(self._spend_bucket(inp.agent, limit), -response.cost_usd))
            if gives:
                await self._quietly(self._buckets.give(gives, now))
            if response.rate_limits is not None:
                await self._learn_headers(m, response.rate_limits, now)
        elif isinstance(error, RateLimitedError):
            m.concurrency.release(rate_limited=True)
            self.stats.rate_limited += 1
            refunds = list(permit.takes)
            if permit.spend is not None:
                refunds.append(permit.spend)
            if refunds:
                await self._quietly(self._buckets.give(refunds, now))
            until = now + (
                error.retry_after if error.retry_after is not None else self.retry.default_delay_s
            )
            m.cooldown_until = max(m.cooldown_until, until)
            for take in permit.takes:
                await self._quietly(self._buckets.block(take.bucket, until, now))
            log.debug(
                "model %s answered 429; calls wait %.2fs (concurrency limit now %.1f)",
                m.name,
                until - now,
                m.concurrency.limit,
            )
        else:
            m.concurrency.release()
            if permit.spend is not None:
                await self._quietly(self._buckets.give([permit.spend], now))

    async def _learn_headers(self, m: _Model, snap: RateLimitSnapshot, now: float) -> None:
        if self._learn and (
            (m.limits.rpm is None and snap.limit_requests)
            or (m.limits.tpm is None and snap.limit_tokens)
        ):
            self._learned[m.name] = ModelLimits(
                rpm=float(snap.limit_requests) if snap.limit_requests else None,
                tpm=float(snap.limit_tokens) if snap.limit_tokens else None,
            )
            m.limits = self.limits_for(m.name)
            log.info("model %s: learned limits rpm=%s tpm=%s", m.name, m.limits.rpm, m.limits.tpm)
        for bucket, remaining in (
            (self._request_bucket(m), snap.remaining_requests),
            (self._token_bucket(m), snap.remaining_tokens),
        ):
            if bucket is not None and remaining is not None and remaining < bucket.capacity:
                await self._quietly(self._buckets.cap(bucket, float(remaining), now))

    # -- consumption gate ----------------------------------------------------------------------

    def should_pause(self, agent: str) -> bool:
        """Whether the worker should stop fetching events for ``agent`` for now.

        True while the agent's spend budget is spent, while a model it calls is cooling down or
        out of permits for longer than ``pause_after_s``, or while its oldest waiting call has
        waited longer than that.
        """
        now = self._clock()
        if self._spend_blocked.get(agent, 0.0) > now:
            return True
        waiting = self._waiting.get(agent)
        if waiting:
            oldest = next(iter(waiting.values()))
            if time.monotonic() - oldest > self.pause_after_s:
                return True
        for name in self._agent_models.get(agent, ()):
            m = self._models.get(name)
            if m is not None and max(m.blocked_until, m.cooldown_until) - now > self.pause_after_s:
                return True
        return False

    def concurrency_limit(self, model: str) -> float:
        """The current AIMD concurrency limit of a model in this process."""
        return self._model(model).concurrency.limit
