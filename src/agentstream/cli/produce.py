"""``agentstream produce``: publish JSON lines to a topic or queue."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from agentstream.backends import DEFAULT_URL, Backends
from agentstream.cli._app import cli, console, err_console, run_async
from agentstream.event import OutgoingRecord

BATCH = 500


def record_from_line(
    topic: str, line: str, *, key_field: str | None, id_field: str | None, envelope: bool
) -> OutgoingRecord:
    """Build a record from one JSON line.

    Plain mode: the line is the value; ``key_field`` and ``id_field`` name payload fields copied
    to the record key and the ``id`` header. Envelope mode: the line is
    ``{"key": ..., "value": ..., "headers": {...}}``.
    """
    data: Any = json.loads(line)
    if envelope:
        if not isinstance(data, dict) or "value" not in data:
            raise ValueError('envelope lines need {"value": ..., "key": ..., "headers": {...}}')
        value = data["value"]
        raw = value.encode() if isinstance(value, str) else json.dumps(value).encode()
        key = data.get("key")
        headers = tuple((str(k), str(v).encode()) for k, v in (data.get("headers") or {}).items())
        return OutgoingRecord(topic, None if key is None else str(key).encode(), raw, headers)
    headers_list: list[tuple[str, bytes]] = []
    key_bytes: bytes | None = None
    if key_field is not None:
        if not isinstance(data, dict) or key_field not in data:
            raise ValueError(f"line has no field {key_field!r} for the key")
        key_bytes = str(data[key_field]).encode()
    if id_field is not None:
        if not isinstance(data, dict) or id_field not in data:
            raise ValueError(f"line has no field {id_field!r} for the id header")
        headers_list.append(("id", str(data[id_field]).encode()))
    return OutgoingRecord(topic, key_bytes, line.strip().encode(), tuple(headers_list))


@cli.command()
def produce(
    topic: Annotated[str, typer.Argument(help="Destination topic or queue.")],
    file: Annotated[str, typer.Argument(help="JSON-lines file, or - for standard input.")],
    key: Annotated[str | None, typer.Option(help="Payload field to use as record key.")] = None,
    id: Annotated[
        str | None, typer.Option("--id", help="Payload field copied to the `id` header.")
    ] = None,
    envelope: Annotated[
        bool, typer.Option(help='Lines are {"key", "value", "headers"} envelopes.')
    ] = False,
    broker: Annotated[
        str | None, typer.Option(envvar="AGENTSTREAM_BROKER", help="Broker URL.")
    ] = None,
) -> None:
    """Publish each line of FILE as one record."""
    stream = sys.stdin if file == "-" else Path(file).open(encoding="utf-8")  # noqa: SIM115
    with stream:
        lines = [ln for ln in stream if ln.strip()]
    records: list[OutgoingRecord] = []
    for n, line in enumerate(lines, 1):
        try:
            records.append(
                record_from_line(topic, line, key_field=key, id_field=id, envelope=envelope)
            )
        except ValueError as exc:
            err_console.print(f"[red]line {n}:[/red] {exc}")
            raise typer.Exit(1) from exc
    sent = run_async(_send(broker or DEFAULT_URL, records))
    console.print(f"produced {sent} record(s) to {topic} on {broker or DEFAULT_URL}")


async def _send(url: str, records: list[OutgoingRecord]) -> int:
    transport = Backends(url, url).transport()
    await transport.start()
    try:
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("producing", total=len(records))
            for i in range(0, len(records), BATCH):
                chunk = records[i : i + BATCH]
                await transport.produce(chunk)
                progress.advance(task, len(chunk))
    finally:
        await transport.close()
    return len(records)
