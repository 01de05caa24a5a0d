"""``agentstream tail``: print the records of a topic or queue, on any transport.

A tail joins a consumer group of its own (``agentstream-tail-<random>``), so on Kafka and on the
embedded log it reads the topic from its start without disturbing any agent's group, and never
commits. On SQS there are no groups: a received message is invisible to other consumers for its
visibility timeout, then comes back (a tail never deletes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from typing import Annotated, Any

import typer
from rich.markup import escape

from agentstream.backends import DEFAULT_URL, Backends
from agentstream.cli._app import cli, console, run_async
from agentstream.cli._inspect import BrokerOption, JsonOption
from agentstream.event import Message, text_of
from agentstream.transports.base import IgnoreRebalance


@cli.command()
def tail(
    topic: Annotated[str, typer.Argument(help="Topic or queue to read.")],
    broker: BrokerOption = None,
    max_records: Annotated[
        int | None, typer.Option("--max", help="Stop after this many records.", min=1)
    ] = None,
    idle: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds without a record (default: follow)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a topic's records from its start, then follow it (Ctrl-C stops)."""
    run_async(_tail(broker or DEFAULT_URL, topic, max_records, idle, as_json))


async def _tail(
    url: str, topic: str, max_records: int | None, idle: float | None, as_json: bool
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    transport = Backends(url, url).transport()
    await transport.start()
    seen = 0
    last = time.monotonic()
    try:
        await transport.subscribe([topic], f"agentstream-tail-{uuid.uuid4().hex[:8]}",
                                  IgnoreRebalance())  # fmt: skip
        while not stop.is_set():
            batch = await transport.poll(100, 0.2)
            for message in batch[: None if max_records is None else max_records - seen]:
                _print(message, as_json)
                seen += 1
            if batch:
                last = time.monotonic()
            if max_records is not None and seen >= max_records:
                break
            if idle is not None and time.monotonic() - last >= idle:
                break
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            await transport.close()


def _print(message: Message, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_json(message), ensure_ascii=False), flush=True)
        return
    key = text_of(message.key)
    head = f"{message.topic}[{message.partition}]@{message.offset}"
    console.print(
        f"[dim]{escape(head)}{'' if key is None else escape(f' key={key}')}[/dim] "
        f"{escape(_value(message.value))}",
        highlight=False,
        soft_wrap=True,
        markup=True,
    )


def _value(raw: bytes | None) -> str:
    if raw is None:
        return "(tombstone: null value)"
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"(binary, {len(raw)} bytes) {raw[:64].hex()}"


def _json(message: Message) -> dict[str, Any]:
    raw = message.value
    value: Any = None
    encoding = "tombstone"
    if raw is not None:
        try:
            value, encoding = raw.decode("utf-8"), "text"
        except UnicodeDecodeError:
            value, encoding = raw.hex(), "hex"
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp_ms": message.timestamp_ms,
        "key": text_of(message.key),
        "headers": {k: text_of(v) for k, v in message.headers},
        "value": value,
        "value_encoding": encoding,
    }
