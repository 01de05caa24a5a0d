"""The dead-letter envelope and the dead-letter record published to a DLQ topic.

The envelope (kept in the journal, shown by ``agentstream dlq show``) carries everything needed
to understand and redrive a failure: the original bytes untouched, where they came from, the
failure, the attempts, and the agent's journal (each model call's output, effects done,
idempotency keys issued, cost so far).

The record published to the dead-letter topic keeps the original key and value bytes (a
tombstone stays a tombstone: ``value_b64`` is null in the envelope) and puts the context in
headers, following the Kafka Connect (``__connect.errors.*``) and Spring Kafka
(``kafka_dlt-*``) conventions, plus ``agentstream-*`` headers for what they lack.
"""

from __future__ import annotations

import base64
import struct
import time
import traceback as tb
from collections.abc import Sequence
from typing import Any

from agentstream.agent import AgentSpec
from agentstream.event import Event, Headers, OutgoingRecord
from agentstream.failures import NonDeterminismError
from agentstream.journal.records import FailureRecord, StepKind, StepRecord, StepStatus

DLQ_HEADER_PREFIX = "agentstream-dlq-"


def format_traceback(exc: BaseException | None) -> str:
    """The full traceback text of an exception."""
    if exc is None:
        return ""
    return "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


def build_envelope(
    *,
    spec: AgentSpec,
    event: Event,
    group: str,
    failure_class: str,
    error: BaseException | None,
    attempts: int,
    failures: Sequence[FailureRecord],
    steps: Sequence[StepRecord],
    issued_keys: Sequence[str] = (),
    detail: dict[str, Any] | None = None,
    epoch: int = 0,
) -> dict[str, Any]:
    """Assemble the dead-letter envelope of an event.

    ``epoch`` is the claim epoch that dead-lettered it: unlike the attempt count, which a
    redrive resets, it never repeats for an event, so it tells its dead letters apart.
    """
    msg = event.message
    now = time.time()
    detail = dict(detail or {})
    if isinstance(error, NonDeterminismError):
        detail["nondeterminism"] = {
            "seq": error.seq,
            "recorded_fingerprint": error.recorded_fingerprint,
            "new_fingerprint": error.new_fingerprint,
        }
    llm_steps = [s for s in steps if s.kind == StepKind.LLM]
    effects = [s for s in steps if s.kind == StepKind.EFFECT]
    times = [f.at for f in failures] or [now]
    keys = list(
        dict.fromkeys([*issued_keys, *(s.idempotency_key for s in effects if s.idempotency_key)])
    )
    models = [s.meta.get("model") for s in llm_steps if s.meta.get("model")]
    prompt_versions = [
        s.meta.get("prompt_version") for s in llm_steps if s.meta.get("prompt_version")
    ]
    return {
        "agent": spec.name,
        "agent_version": spec.agent_version,
        "event_id": event.identity,
        "identity_source": event.identity_source,
        "key": event.key,
        "consumer_group": group,
        "source": {
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "timestamp_ms": msg.timestamp_ms,
            "delivery_count": msg.delivery_count,
            "max_deliveries": msg.max_deliveries,
        },
        "original": {
            "key_b64": None if msg.key is None else base64.b64encode(msg.key).decode(),
            "value_b64": None if msg.value is None else base64.b64encode(msg.value).decode(),
            "headers": [[k, base64.b64encode(v).decode()] for k, v in msg.headers],
        },
        "failure_class": failure_class,
        "exception": {
            "type": None
            if error is None
            else f"{type(error).__module__}.{type(error).__qualname__}",
            "message": "" if error is None else str(error),
            "traceback": format_traceback(error),
        },
        "epoch": epoch,
        "attempts": attempts,
        "first_failure_at": min(times),
        "last_failure_at": max(times),
        "failures": [
            {
                "attempt": f.attempt,
                "failure_class": f.failure_class,
                "error_type": f.error_type,
                "message": f.message,
                "at": f.at,
            }
            for f in failures
        ],
        "model": models[-1] if models else spec.model,
        "prompt_version": prompt_versions[-1] if prompt_versions else spec.prompt_version,
        "llm_attempts": [
            {
                "seq": s.seq,
                "name": s.name,
                "model": s.meta.get("model"),
                "fingerprint": s.fingerprint,
                "output": (s.result or {}).get("text") if isinstance(s.result, dict) else None,
                "refusal": (s.result or {}).get("refusal") if isinstance(s.result, dict) else None,
                "tool_calls": (s.result or {}).get("tool_calls")
                if isinstance(s.result, dict)
                else None,
                "finish_reason": (s.result or {}).get("finish_reason")
                if isinstance(s.result, dict)
                else None,
                "usage": {
                    "prompt_tokens": s.meta.get("prompt_tokens", 0),
                    "completion_tokens": s.meta.get("completion_tokens", 0),
                },
                "cost_usd": s.meta.get("cost_usd", 0.0),
            }
            for s in llm_steps
        ],
        "semantic_attempts": list(getattr(error, "attempts", []) or []),
        "effects": [
            {
                "seq": s.seq,
                "name": s.name,
                "status": str(s.status),
                "idempotency_key": s.idempotency_key,
                "result": s.result if s.status == StepStatus.DONE else None,
            }
            for s in effects
        ],
        "waits": [
            {
                "seq": s.seq,
                "kind": str(s.kind),
                "name": s.name,
                "status": str(s.status),
                "deadline": s.meta.get("deadline"),
                "result": s.result,
            }
            for s in steps
            if s.kind in (StepKind.WAIT, StepKind.SLEEP)
        ],
        "idempotency_keys": keys,
        "tokens": sum(int(s.meta.get("total_tokens", 0)) for s in llm_steps),
        "cost_usd": round(sum(float(s.meta.get("cost_usd", 0.0)) for s in llm_steps), 8),
        "detail": detail,
        "created_at": now,
    }


def _int32(value: int) -> bytes:
    return struct.pack(">i", value)


def _int64(value: int) -> bytes:
    return struct.pack(">q", value)


def dead_letter_record(
    topic: str, event: Event, envelope: dict[str, Any], dlq_id: int | None = None
) -> OutgoingRecord:
    """The record for a dead-letter topic: original bytes, context in headers."""
    msg = event.message
    exc = envelope["exception"]
    headers: Headers = (
        *msg.headers,
        ("__connect.errors.topic", msg.topic.encode()),
        ("__connect.errors.partition", str(msg.partition).encode()),
        ("__connect.errors.offset", str(msg.offset).encode()),
        ("__connect.errors.exception.class.name", (exc["type"] or "").encode()),
        ("__connect.errors.exception.message", exc["message"].encode()),
        ("__connect.errors.exception.stacktrace", exc["traceback"].encode()),
        ("kafka_dlt-original-topic", msg.topic.encode()),
        ("kafka_dlt-original-partition", _int32(msg.partition)),
        ("kafka_dlt-original-offset", _int64(msg.offset)),
        ("kafka_dlt-original-timestamp", _int64(msg.timestamp_ms)),
        ("kafka_dlt-original-consumer-group", envelope["consumer_group"].encode()),
        ("kafka_dlt-exception-fqcn", (exc["type"] or "").encode()),
        ("kafka_dlt-exception-message", exc["message"].encode()),
        (f"{DLQ_HEADER_PREFIX}event-id", event.identity.encode()),
        (f"{DLQ_HEADER_PREFIX}agent", envelope["agent"].encode()),
        (f"{DLQ_HEADER_PREFIX}agent-version", envelope["agent_version"].encode()),
        (f"{DLQ_HEADER_PREFIX}failure-class", envelope["failure_class"].encode()),
        (f"{DLQ_HEADER_PREFIX}attempts", str(envelope["attempts"]).encode()),
    )
    if msg.delivery_count is not None:
        headers = (
            *headers,
            (f"{DLQ_HEADER_PREFIX}delivery-count", str(msg.delivery_count).encode()),
        )
    return OutgoingRecord(
        topic=topic,
        key=msg.key,
        value=msg.value,
        headers=headers,
        dedupe_id=(
            f"dlq:{envelope['agent']}:{event.identity}:"
            f"{envelope.get('epoch') or envelope['attempts']}"
        ),
    )
