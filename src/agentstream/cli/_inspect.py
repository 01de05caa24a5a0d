"""Helpers of the inspection commands (journal, dlq, replay, prune): options, time, rendering."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agentstream.backends import DEFAULT_URL, Backends, scheme_of
from agentstream.event import text_of
from agentstream.failures import ConfigurationError
from agentstream.journal.records import EventRecord, OutboxRow, StepKind, StepRecord
from agentstream.journal.store import Store
from agentstream.sqlite_db import sqlite_path

StoreOption = Annotated[
    str | None, typer.Option("--store", envvar="AGENTSTREAM_STORE", help="Journal URL.")
]
BrokerOption = Annotated[
    str | None, typer.Option("--broker", envvar="AGENTSTREAM_BROKER", help="Broker URL.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str | None, *, now: float | None = None) -> float | None:
    """Seconds since the epoch from ``2h``/``30m``/``7d`` (ago), an ISO date or epoch seconds."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        return (now if now is not None else time.time()) - float(match[1]) * _UNITS[match[2]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r}: use 2h, 30m, 7d, an ISO time or epoch seconds"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def fmt_time(ts: float | None) -> str:
    """UTC time of epoch seconds, to the second."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def urls(store: str | None, broker: str | None) -> tuple[str, str]:
    """Broker and journal URLs of an inspection command.

    Without ``--store``: the one ``*.journal.db`` in the current folder (each app's default
    journal is named after it), else the broker's file.

    Raises:
        ConfigurationError: Several journals are here and none was chosen.
    """
    broker_url = broker or DEFAULT_URL
    if store:
        return broker_url, store
    found = sorted(Path.cwd().glob("*.journal.db"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ConfigurationError(
            f"several journals here ({names}); choose one with --store sqlite:///NAME"
        )
    return broker_url, f"sqlite:///{found[0].name}" if found else broker_url


def require_journal(url: str) -> None:
    """Refuse a SQLite journal file that does not exist: reading must never create one.

    Raises:
        ConfigurationError: The file is missing (a typo, or another folder).
    """
    if scheme_of(url) == "sqlite" and not Path(sqlite_path(url)).exists():
        raise ConfigurationError(
            f"no journal at {sqlite_path(url)} (the file does not exist); pass the app's "
            "journal with --store, e.g. --store sqlite:///support.journal.db"
        )


def check_writable(path: Path, option: str) -> None:
    """Refuse, before any work, an output file that could not be written at the end.

    Raises:
        ConfigurationError: Its folder is missing or not writable, or it is a folder.
    """
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigurationError(f"{option} {path}: is a folder; give a file name")
    if not folder.is_dir():
        raise ConfigurationError(f"{option} {path}: the folder {folder} does not exist")
    target = path if path.exists() else folder
    if not os.access(target, os.W_OK):
        raise ConfigurationError(f"{option} {path}: {target} is not writable")


@asynccontextmanager
async def open_store(backends: Backends, *, create: bool = False) -> AsyncIterator[Store]:
    """The journal of ``backends``, opened and closed around the block.

    Args:
        backends: Where the journal is.
        create: Create a missing SQLite journal (only commands that write new history).
    """
    if not create:
        require_journal(backends.store_url)
    store = backends.store()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def dumps(value: Any) -> str:
    """Pretty JSON for terminal and ``--json`` output."""
    return json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False)


def event_json(record: EventRecord) -> dict[str, Any]:
    """A journal event row as JSON (message bytes in base64 and, when text, as text)."""
    msg = record.message
    out: dict[str, Any] = {
        k: getattr(record, k)
        for k in (
            "agent",
            "event_id",
            "state",
            "epoch",
            "owner",
            "attempts",
            "deliveries",
            "key",
            "topic",
            "partition",
            "offset",
            "timestamp_ms",
            "input_hash",
            "group_id",
            "identity_source",
            "outcome",
            "result",
            "created_at",
            "updated_at",
            "completed_at",
        )
    }
    out["state"] = str(record.state)
    if msg is not None:
        out["message"] = {
            "key": text_of(msg.key),
            "value_b64": None if msg.value is None else base64.b64encode(msg.value).decode(),
            "value_text": _maybe_text(msg.value),
            "headers": {k: text_of(v) for k, v in msg.headers},
        }
    return out


def _maybe_text(raw: bytes | None) -> str | None:
    if raw is None:  # a tombstone
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def step_json(step: StepRecord) -> dict[str, Any]:
    """A journaled step as JSON."""
    return {
        "seq": step.seq,
        "kind": str(step.kind),
        "name": step.name,
        "status": str(step.status),
        "fingerprint": step.fingerprint,
        "idempotency_key": step.idempotency_key,
        "request": step.request,
        "result": step.result,
        "meta": step.meta,
        "epoch": step.epoch,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
    }


def outbox_json(row: OutboxRow) -> dict[str, Any]:
    """An outbox row as JSON."""
    rec = row.record
    return {
        "seq": row.seq,
        "topic": rec.topic,
        "key": text_of(rec.key),
        "value_text": _maybe_text(rec.value),
        "headers": {k: text_of(v) for k, v in rec.headers},
        "dedupe_id": rec.dedupe_id,
        "published_at": row.published_at,
    }


def usage_of(steps: list[StepRecord]) -> tuple[int, int, float]:
    """LLM calls, tokens and cost recorded in an event's steps."""
    llm = [s for s in steps if s.kind == StepKind.LLM]
    tokens = sum(int(s.meta.get("total_tokens", 0)) for s in llm)
    cost = sum(float(s.meta.get("cost_usd", 0.0)) for s in llm)
    return len(llm), tokens, cost


def render_steps(steps: list[StepRecord]) -> Group:
    """Each step of an event: LLM requests and raw outputs, effects and their keys."""
    parts: list[Any] = []
    for s in steps:
        title = f"#{s.seq} {s.kind} {s.name!r} [{s.status}]"
        body = Text()
        if s.kind == StepKind.LLM:
            meta = s.meta
            body.append(
                f"model {meta.get('model')}  prompt {meta.get('prompt_version')}  "
                f"tokens {meta.get('prompt_tokens', 0)}+{meta.get('completion_tokens', 0)}  "
                f"cost ${float(meta.get('cost_usd', 0.0)):.6f}\n",
                style="dim",
            )
            for m in (s.request or {}).get("messages", []):
                body.append(f"{m.get('role')}: ", style="bold")
                body.append(f"{_clip(m.get('content'))}\n")
            result = s.result if isinstance(s.result, dict) else {}
            body.append("output: ", style="bold green")
            body.append(f"{_clip(result.get('text') or result.get('refusal'))}\n")
            for call in result.get("tool_calls") or []:
                body.append(f"tool call {call.get('name')}({call.get('arguments')})\n")
        elif s.kind == StepKind.EFFECT:
            body.append(f"idempotency key {s.idempotency_key}\n", style="bold")
            body.append(f"request {_clip(json.dumps(s.request))}\n")
            body.append(f"result {_clip(json.dumps(s.result))}\n")
        else:
            body.append(f"request {_clip(json.dumps(s.request))}\n")
            body.append(f"result {_clip(json.dumps(s.result))}\n")
        parts.append(Panel(body, title=title, title_align="left"))
    return Group(*parts)


def _clip(value: Any, limit: int = 2000) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def key_value_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    """A two-column table."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, "-" if v is None else str(v))
    return table
