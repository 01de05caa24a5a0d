"""Failure classes, the retry policy and classification of exceptions.

Every error agentstream raises or translates belongs to this tree. Backends (transports, stores,
LLM providers) translate their library's errors into it at the edge, so the runtime decides what
to do by class, never by inspecting a driver's exception::

    AgentStreamError
    ├── TransientError            retried with capped, jittered backoff
    │   ├── RateLimitedError      429 or quota; carries retry_after
    │   ├── ProviderUnavailable   5xx, connection refused or reset
    │   ├── ProviderTimeout       a read that took too long
    │   └── EffectTimeoutError    an async effect ran past its deadline and was cancelled
    ├── SemanticError             re-asked a bounded number of times, then dead-lettered
    │   ├── InvalidOutputError    unparseable or schema-invalid model output
    │   ├── RefusalError          the model declined
    │   ├── ContextOverflowError  the prompt does not fit the model's context window
    │   └── PolicyViolationError  an output check of the agent's own rejected the result
    ├── PoisonError               dead-lettered at once
    │   ├── UndecodablePayload    bytes that are not the declared encoding
    │   ├── SchemaInvalidPayload  decoded, but fails the agent's input model
    │   └── OversizedPayload      larger than the agent accepts
    ├── BudgetExceededError       a per-event ceiling on calls, tokens or cost was hit
    ├── NonDeterminismError       a journaled step's request differs from the recorded one
    ├── EffectOutcomeUnknown      an effect started, the worker died, nothing can reconcile it
    ├── StepNotRecorded           a recorded replay needed a step the journal does not have
    ├── FencedError               this worker's claim has moved on (zombie write rejected)
    ├── LeaseLostError            the claim was taken over or ran out; the handler stops
    └── ConfigurationError        the application is wired wrongly
        └── NoCurrentContext      current_context() called outside a handler
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass, field


class FailureClass(enum.StrEnum):
    """What kind of failure ended or interrupted an event's processing."""

    TRANSIENT = "transient"
    SEMANTIC = "semantic"
    POISON = "poison"
    BUDGET_EXCEEDED = "budget_exceeded"
    NONDETERMINISM = "nondeterminism"
    EFFECT_UNKNOWN = "effect_unknown"
    AGENT_ERROR = "agent_error"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"


class AgentStreamError(Exception):
    """Base of every error agentstream raises."""

    failure_class: FailureClass = FailureClass.AGENT_ERROR


class ConfigurationError(AgentStreamError):
    """The application, an agent or a backend URL is configured wrongly."""


class NoCurrentContext(ConfigurationError):
    """``agentstream.current_context()`` was called outside an agent's handler."""


class TransientError(AgentStreamError):
    """A failure that may succeed if tried again later."""

    failure_class = FailureClass.TRANSIENT

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    """The provider rejected the request for quota reasons (HTTP 429)."""


class ProviderUnavailable(TransientError):
    """The provider answered 5xx or could not be reached."""


class ProviderTimeout(TransientError):
    """The provider did not answer in time."""


class SemanticError(AgentStreamError):
    """The model answered, but the answer cannot be used."""

    failure_class = FailureClass.SEMANTIC

    def __init__(self, message: str, *, attempts: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)


class InvalidOutputError(SemanticError):
    """The model's output could not be parsed or failed its schema."""


class RefusalError(SemanticError):
    """The model refused to answer."""


class ContextOverflowError(SemanticError):
    """The request does not fit the model's context window."""


class PolicyViolationError(SemanticError):
    """The agent's own output policy rejected the result."""


class PoisonError(AgentStreamError):
    """The input itself is unusable; retrying cannot help."""

    failure_class = FailureClass.POISON


class UndecodablePayload(PoisonError):
    """The payload bytes are not valid in the declared encoding."""


class SchemaInvalidPayload(PoisonError):
    """The payload decoded but does not satisfy the agent's input model."""


class OversizedPayload(PoisonError):
    """The payload is larger than the agent accepts."""


class BudgetExceededError(AgentStreamError):
    """A per-event ceiling on LLM calls, tokens or cost was reached."""

    failure_class = FailureClass.BUDGET_EXCEEDED


class NonDeterminismError(AgentStreamError):
    """A journaled step was asked for again with a different request."""

    failure_class = FailureClass.NONDETERMINISM

    def __init__(
        self, message: str, *, seq: int, recorded_fingerprint: str, new_fingerprint: str
    ) -> None:
        super().__init__(message)
        self.seq = seq
        self.recorded_fingerprint = recorded_fingerprint
        self.new_fingerprint = new_fingerprint


class EffectOutcomeUnknown(AgentStreamError):
    """An effect was started, its result never recorded, and nothing can reconcile it."""

    failure_class = FailureClass.EFFECT_UNKNOWN


class StepNotRecorded(AgentStreamError):
    """A recorded replay reached a step with no recorded answer (the code diverged)."""

    failure_class = FailureClass.NONDETERMINISM


class FencedError(AgentStreamError):
    """A write carried a fencing epoch that is no longer current: the claim moved on."""


class LeaseLostError(AgentStreamError):
    """The claim was taken over, or runs out unrenewed: the handler stops before its next step.

    Unlike :class:`FencedError`, no journal write was rejected: the lease keeper found the
    claim gone (or could not renew it in time) and the handler stopped on its own.
    """


class EffectTimeoutError(TransientError):
    """An async effect ran past its declared ``timeout`` and was cancelled.

    Its outcome is unknown: the intent stays ``started`` and the next attempt reconciles it.
    """


@dataclass(frozen=True)
class Retry:
    """Retry policy for transient failures.

    Attributes:
        attempts: Most processing attempts an event gets, counted durably in the journal
            (a crash mid-event counts as an attempt, so a message that kills the worker cannot
            loop forever across restarts).
        backoff_initial: First backoff ceiling in seconds.
        backoff_max: Cap on any single backoff in seconds.
        multiplier: Growth of the ceiling per attempt.
        retry_on: Extra exception types treated as transient.
    """

    attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 60.0
    multiplier: float = 2.0
    retry_on: tuple[type[BaseException], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError("Retry.attempts must be at least 1")
        if self.backoff_initial < 0 or self.backoff_max < 0:
            raise ConfigurationError("Retry backoff values must be non-negative")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before the next attempt: capped exponential backoff with full jitter.

        Args:
            attempt: The attempt that just failed, starting at 1.
            rng: Source of randomness (injectable for tests).
        """
        ceiling = min(self.backoff_max, self.backoff_initial * self.multiplier ** (attempt - 1))
        return (rng or random).uniform(0.0, ceiling)


_TRANSIENT_BUILTINS: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    asyncio.TimeoutError,
)


def classify(exc: BaseException, retry: Retry | None = None) -> FailureClass:
    """Map an exception to its failure class.

    agentstream's own errors carry their class. Timeouts and connection errors from any library
    are transient, as are the types listed in ``Retry.retry_on``. Everything else raised by agent
    code is an ``agent_error``: a bug that does not fix itself, so it is dead-lettered for a
    redrive after the fix rather than retried.
    """
    own = agentstream_cause(exc)
    if own is not None:
        return own.failure_class
    if isinstance(exc, _TRANSIENT_BUILTINS):
        return FailureClass.TRANSIENT
    if retry is not None and retry.retry_on and isinstance(exc, retry.retry_on):
        return FailureClass.TRANSIENT
    return FailureClass.AGENT_ERROR


def agentstream_cause(exc: BaseException) -> AgentStreamError | None:
    """``exc`` itself if it is agentstream's, else the first of its causes that is.

    An SDK wraps what its HTTP transport raises (``APIConnectionError(...) from err``), and a
    framework may wrap the SDK's error again; an agentstream error raised inside the journaled
    transport (non-determinism, a spent budget, a lost claim) keeps its meaning through them.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, AgentStreamError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def retry_after_hint(exc: BaseException) -> float | None:
    """The server-given delay carried by a transient error, if any."""
    own = agentstream_cause(exc)
    if isinstance(own, TransientError):
        return own.retry_after
    return None
