"""Recorded histories as JSON lines: golden files that CI replays.

``export_history`` writes each completed event of an agent (its source message, steps, result
and outputs) as one JSON line; ``import_history`` loads such a file into any journal through
the :class:`~agentstream.journal.store.Store` protocol (claim, steps, completion), so a checked-in
history can be replayed against the current code of an example on every run: a change that
alters a recorded decision fails the replay.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

from agentstream.event import Message, OutgoingRecord
from agentstream.failures import ConfigurationError
from agentstream.journal.blobs import expand_steps
from agentstream.journal.records import (
    Completion,
    EventMeta,
    EventState,
    StepKind,
    StepRecord,
    StepStatus,
)
from agentstream.journal.store import Store


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


async def export_history(store: Store, agent: str, path: str | Path) -> int:
    """Write an agent's completed events to a JSON-lines file; return how many."""
    events = await store.list_events(
        agent=agent, state=EventState.COMPLETED, oldest_first=True, limit=None
    )
    lines: list[str] = []
    for e in events:
        if e.message is None:
            continue
        msg = e.message
        steps = await expand_steps(store, await store.steps(agent, e.event_id))
        outbox = await store.outbox(agent, e.event_id)
        prefix = f"{agent}:{e.event_id}:"
        item: dict[str, Any] = {
            "event_id": e.event_id,
            "key": e.key,
            "identity_source": e.identity_source,
            "group_id": e.group_id,
            "input_hash": e.input_hash,
            "outcome": e.outcome,
            "result": e.result,
            "message": {
                "topic": msg.topic,
                "partition": msg.partition,
                "offset": msg.offset,
                "timestamp_ms": msg.timestamp_ms,
                "key": _b64(msg.key),
                "value": _b64(msg.value),
                "headers": [[k, _b64(v)] for k, v in msg.headers],
            },
            "steps": [
                {
                    "seq": s.seq,
                    "kind": str(s.kind),
                    "name": s.name,
                    "fingerprint": s.fingerprint,
                    "status": str(s.status),
                    "request": s.request,
                    "result": s.result,
                    "idempotency_key": s.idempotency_key,
                    "meta": s.meta,
                }
                for s in steps
            ],
            "outputs": [
                {
                    "topic": r.record.topic,
                    "key": _b64(r.record.key),
                    "value": _b64(r.record.value),
                    "headers": [[k, _b64(v)] for k, v in r.record.headers],
                    "dedupe_id": r.record.dedupe_id,
                }
                for r in outbox
                if (r.record.dedupe_id or "").startswith(prefix)
            ],
        }
        # key order is kept: recorded results feed later requests, whose fingerprints hash it
        lines.append(json.dumps(item, ensure_ascii=False))
    text = "".join(line + "\n" for line in lines)
    await asyncio.to_thread(Path(path).write_text, text, encoding="utf-8")
    return len(lines)


async def import_history(store: Store, agent: str, path: str | Path) -> int:
    """Load a history file into a journal as completed events; return how many.

    Nothing is written when any of its events is already in the journal (a second import).

    Raises:
        ConfigurationError: Some events are already there.
    """
    count = 0
    text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
    items = [json.loads(line) for line in text.splitlines() if line.strip()]
    ids = [str(item["event_id"]) for item in items]
    present = await store.list_events(agent=agent, event_ids=ids, limit=None) if ids else []
    if present:
        raise ConfigurationError(
            f"{len(present)} of the {len(ids)} events in {path} are already in the journal "
            f"for agent {agent!r} (e.g. {present[0].event_id!r}), so nothing was imported; "
            "import into an empty journal (--store sqlite:///replay.db)"
        )
    for item in items:
        m = item["message"]
        message = Message(
            topic=m["topic"],
            partition=m["partition"],
            offset=m["offset"],
            key=_unb64(m["key"]),
            value=_unb64(m["value"]),
            headers=tuple((k, _unb64(v) or b"") for k, v in m["headers"]),
            timestamp_ms=m["timestamp_ms"],
        )
        meta = EventMeta(
            key=item["key"],
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=message.timestamp_ms,
            input_hash=item["input_hash"] or "",
            group_id=item["group_id"] or "",
            identity_source=item["identity_source"] or "header",
            message=message,
        )
        claim = await store.claim(agent, item["event_id"], owner="import", lease_s=60, meta=meta)
        for s in item["steps"]:
            step = StepRecord(
                seq=s["seq"],
                kind=StepKind(s["kind"]),
                name=s["name"],
                fingerprint=s["fingerprint"],
                status=StepStatus(s["status"]),
                request=s["request"],
                result=s["result"],
                idempotency_key=s["idempotency_key"],
                meta=s["meta"],
            )
            await store.write_step(agent, item["event_id"], claim.epoch, step)
        outputs = [
            OutgoingRecord(
                topic=o["topic"],
                key=_unb64(o["key"]),
                value=_unb64(o["value"]),
                headers=tuple((k, _unb64(v) or b"") for k, v in o["headers"]),
                dedupe_id=o["dedupe_id"],
            )
            for o in item["outputs"]
        ]
        completion = Completion(outputs=outputs, result=item["result"], outcome=item["outcome"])
        await store.complete(agent, item["event_id"], claim.epoch, completion)
        count += 1
    return count
