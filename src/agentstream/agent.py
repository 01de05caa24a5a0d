"""An agent's declaration: where it reads, how it identifies, orders, decodes and retries.

:class:`AgentSpec` is what ``@app.agent(...)`` builds; it is immutable and validated when the
decorator runs, so a misconfigured agent fails at import time with a clear message, not on the
first message.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic
from pydantic import BaseModel

from agentstream.event import IdentitySpec, Message
from agentstream.failures import (
    BudgetExceededError,
    ConfigurationError,
    OversizedPayload,
    Retry,
    SchemaInvalidPayload,
    UndecodablePayload,
)
from agentstream.formats.base import Decoded, Decoder, Encoder
from agentstream.formats.cloud_events import CloudEventsDecoder

Handler = Callable[..., Awaitable[Any]]


class NonDeterminismPolicy(enum.StrEnum):
    """What to do when a resumed step's request differs from the recorded one.

    Every policy reports the mismatch (log line, metric, journal note); they differ in what
    happens next.
    """

    DEAD_LETTER = "dead_letter"
    """Stop the event and dead-letter it with both fingerprints (default)."""
    RERUN = "rerun"
    """Execute the step again and record the new result (never for an effect already started)."""
    USE_RECORDED = "use_recorded"
    """Return the recorded result as if the request had matched."""


class Ordering(enum.StrEnum):
    """How a dead letter affects later events of the same key."""

    KEY = "key"
    """Per-key order; a dead-lettered event does not hold back later ones."""
    STRICT = "strict"
    """Per-key order; after a dead letter, later events of the key are parked until redrive."""


@dataclass(frozen=True)
class Budget:
    """Per-event ceilings; work that exceeds one is dead-lettered as ``budget_exceeded``.

    Attributes:
        max_llm_calls: Most model calls one event may make (all attempts together).
        max_tokens: Most tokens (prompt plus completion) one event may use.
        max_cost_usd: Most money one event may spend (the provider's reported cost when it
            sends one, else the price table's).
        allow_unpriced: Accept ``max_cost_usd`` on a model no price source knows (a gateway
            alias whose cost the gateway reports); otherwise that is a start-up error, since
            the ceiling would only ever see $0.
    """

    max_llm_calls: int | None = 50
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    allow_unpriced: bool = False

    def check(self, *, calls: int, tokens: int, cost_usd: float, next_call_tokens: int) -> None:
        """Raise BudgetExceededError if one more call would pass a ceiling.

        Args:
            calls: Model calls the event has made so far (all attempts).
            tokens: Tokens it has used so far.
            cost_usd: Money it has spent so far.
            next_call_tokens: Estimated tokens of the call about to be made.
        """
        if self.max_llm_calls is not None and calls >= self.max_llm_calls:
            raise BudgetExceededError(
                f"per-event ceiling of {self.max_llm_calls} LLM calls reached"
            )
        if self.max_tokens is not None and tokens + next_call_tokens > self.max_tokens:
            raise BudgetExceededError(
                f"per-event ceiling of {self.max_tokens} tokens reached "
                f"({tokens} used, next call needs about {next_call_tokens})"
            )
        if self.max_cost_usd is not None and cost_usd >= self.max_cost_usd:
            raise BudgetExceededError(
                f"per-event ceiling of ${self.max_cost_usd:.4f} reached (${cost_usd:.4f} spent)"
            )


@dataclass(frozen=True)
class AgentSpec:
    """An agent as declared with ``@app.agent``.

    Attributes:
        name: Agent name (journal namespace, consumer group suffix, metrics label).
        handler: ``async def handler(ctx, payload)``.
        source: Topic or queue to consume.
        key: Ordering key function of the decoded payload (default: the record key).
        identity: Identity setting (default: CloudEvents id header, else coordinates).
        input_type: Type the payload decodes to (from the handler's annotation).
        output: Topic for return values and ``ctx.emit`` (None: no outputs).
        concurrency: Most keys processed at once.
        retry: Retry policy for transient failures.
        dead_letter: Topic for dead-letter records (the journal keeps them regardless).
        version: Entity version function for stale-event detection.
        agent_version: Version of the agent's code and prompts, recorded in dead letters.
        model: Default model for ``ctx.llm``.
        fallback_model: Model that answers this agent's calls while the model's circuit breaker
            is open (None: calls wait for the provider); the journal records which one answered.
        prompt_version: Default prompt version recorded with decisions.
        max_payload_bytes: Larger payloads are poison.
        nondeterminism: Policy for fingerprint mismatches on resume.
        budget: Per-event ceilings.
        ordering: ``key`` or ``strict`` (park a key behind its dead letter).
        hold_key_while_waiting: Under strict ordering, later events of a key wait (parked)
            behind an event that waits for a signal or timer; False lets them go on. Other keys
            always go on, and with ``ordering="key"`` a waiting event holds nothing.
        group: Consumer group (default ``<app>.<agent>``).
        decoder: How message bytes become the payload (default: CloudEvents when the message
            is one, binary or structured mode, else the value as it is).
        encoder: How output values become record bytes (default: JSON, text or bytes).
    """

    name: str
    handler: Handler
    source: str
    key: Callable[[Any], Any] | None = None
    identity: IdentitySpec = None
    input_type: Any = None
    output: str | None = None
    concurrency: int = 16
    retry: Retry = field(default_factory=Retry)
    dead_letter: str | None = None
    version: Callable[[Any], Any] | None = None
    agent_version: str = "1"
    model: str = "sim-1"
    fallback_model: str | None = None
    prompt_version: str | None = None
    max_payload_bytes: int = 1_048_576
    nondeterminism: NonDeterminismPolicy = NonDeterminismPolicy.DEAD_LETTER
    budget: Budget = field(default_factory=Budget)
    ordering: Ordering = Ordering.KEY
    hold_key_while_waiting: bool = True
    group: str | None = None
    decoder: Decoder = field(default_factory=lambda: CloudEventsDecoder(required=False))
    encoder: Encoder | None = None

    def __post_init__(self) -> None:
        if not inspect.iscoroutinefunction(self.handler):
            raise ConfigurationError(f"agent {self.name!r}: the handler must be `async def`")
        if self.concurrency < 1:
            raise ConfigurationError(f"agent {self.name!r}: concurrency must be at least 1")
        if not self.source:
            raise ConfigurationError(f"agent {self.name!r}: a source topic is required")
        if self.max_payload_bytes < 1:
            raise ConfigurationError(f"agent {self.name!r}: max_payload_bytes must be positive")

        if not isinstance(self.decoder, Decoder):
            raise ConfigurationError(
                f"agent {self.name!r}: decoder must have decode(message) and blocking"
            )
        if self.encoder is not None and not isinstance(self.encoder, Encoder):
            raise ConfigurationError(
                f"agent {self.name!r}: encoder must have encode(value, event=, topic=, index=)"
            )

    def decode(self, message: Message) -> Decoded:
        """Decode a message with the agent's decoder and validate it into the input type.

        Returns:
            The decoder's result, its payload validated.

        A tombstone (a null value) that the decoder hands on as None is the payload None when
        the input type accepts None (``Ticket | None``, ``Any`` or no annotation); otherwise it
        is poison with a reason that says so.

        Raises:
            OversizedPayload: The value is larger than ``max_payload_bytes``.
            UndecodablePayload: The bytes are not valid text or JSON, or not what the decoder
                reads.
            SchemaInvalidPayload: The data does not satisfy the input model, or the message is
                a tombstone and the input type does not accept None.
        """
        size = 0 if message.value is None else len(message.value)
        if size > self.max_payload_bytes:
            raise OversizedPayload(
                f"payload of {size} bytes exceeds the agent's limit of "
                f"{self.max_payload_bytes} bytes"
            )
        decoded = self.decoder.decode(message)
        if message.value is None and decoded.payload is None:
            self._check_tombstone()
            payload = None
        else:
            payload = self._parse(decoded.payload)
        return Decoded(payload, decoded.identity, decoded.key, decoded.attributes)

    def _check_tombstone(self) -> None:
        try:
            _validate_data(self.input_type, None)
        except SchemaInvalidPayload as exc:
            name = getattr(self.input_type, "__name__", str(self.input_type))
            raise SchemaInvalidPayload(
                f"a tombstone (null value) and the payload type {name} does not accept None: "
                f"annotate the payload `{name} | None` to receive tombstones as None"
            ) from exc

    def _parse(self, value: Any) -> Any:
        target = self.input_type
        if not isinstance(value, bytes):
            return _validate_data(target, value)
        if target is bytes:
            return value
        if target is str:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UndecodablePayload(f"payload is not UTF-8: {exc}") from exc
        if target in (None, Any, dict, object):
            try:
                return json.loads(value)
            except (UnicodeDecodeError, ValueError) as exc:
                raise UndecodablePayload(f"payload is not valid JSON: {exc}") from exc
        return _validate(target, value)


@functools.lru_cache(maxsize=256)
def _adapter(target: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(target)


def _validate(target: Any, value: bytes) -> Any:
    try:
        if isinstance(target, type) and issubclass(target, BaseModel):
            return target.model_validate_json(value)
        return _adapter(target).validate_json(value)
    except pydantic.ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise UndecodablePayload(
                f"payload is not valid JSON: {exc.errors()[0]['msg']}"
            ) from exc
        name = getattr(target, "__name__", str(target))
        raise SchemaInvalidPayload(f"payload does not match {name}: {exc}") from exc


def _validate_data(target: Any, value: Any) -> Any:
    """Validate already decoded data (a CloudEvent's data, an Avro record) into ``target``."""
    if target in (None, Any, object):
        return value
    try:
        if isinstance(target, type) and issubclass(target, BaseModel):
            return target.model_validate(value)
        return _adapter(target).validate_python(value)
    except pydantic.ValidationError as exc:
        name = getattr(target, "__name__", str(target))
        raise SchemaInvalidPayload(f"payload does not match {name}: {exc}") from exc


def input_type_of(handler: Handler) -> Any:
    """The annotated type of a handler's second parameter (the payload), or None.

    Raises:
        ConfigurationError: The annotation names something that cannot be resolved (for
            example a class imported inside a function); decoding as plain JSON instead would
            silently change the agent's input.
    """
    params = list(inspect.signature(handler).parameters.values())
    if len(params) < 2:
        raise ConfigurationError(
            f"handler {handler.__name__} must take (ctx, payload); it takes {len(params)} "
            "parameter(s)"
        )
    annotation = params[1].annotation
    if annotation is inspect.Parameter.empty:
        return None
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, handler.__globals__, {})
    except Exception as exc:
        raise ConfigurationError(
            f"handler {handler.__name__}: cannot resolve the payload annotation {annotation!r} "
            f"({exc}); define it at module level or pass input_type= to @app.agent"
        ) from exc
