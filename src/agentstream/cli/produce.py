"""``agentstream produce``: publish JSON lines to a topic or queue."""

from __future__ import annotations

import enum
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from agentstream.backends import DEFAULT_URL, Backends
from agentstream.cli._app import cli, console, err_console, fail, run_async
from agentstream.event import OutgoingRecord

BATCH = 500


class CloudEventsMode(enum.StrEnum):
    """How ``--cloudevents`` writes each line (the CloudEvents Kafka binding)."""

    BINARY = "binary"
    STRUCTURED = "structured"


@dataclass(frozen=True)
class CloudEventsOptions:
    """The CloudEvents attributes ``produce`` writes besides ``id``."""

    mode: CloudEventsMode
    type: str = "agentstream.produce"
    source: str = "/agentstream/produce"


def record_from_line(
    topic: str,
    line: str,
    *,
    key_field: str | None,
    id_field: str | None,
    envelope: bool,
    cloudevents: CloudEventsOptions | None = None,
) -> OutgoingRecord:
    """Build a record from one JSON line.

    Plain mode: the line is the value; ``key_field`` and ``id_field`` name payload fields copied
    to the record key and the ``ce_id`` header (the CloudEvents id, which agents read as the
    event identity). With ``cloudevents`` the line is the data of a CloudEvent in binary mode
    (``ce_*`` headers) or structured mode (one ``application/cloudevents+json`` document); its
    id is the ``id_field`` value, else a hash of the line, so producing a file twice produces
    the same events. Envelope mode: the line is ``{"key": ..., "value": ..., "headers": {...}}``;
    a ``"value": null`` is a tombstone (a record with a null value, as Kafka tools write it).
    """
    data: Any = json.loads(line)
    if envelope:
        if not isinstance(data, dict) or "value" not in data:
            raise ValueError('envelope lines need {"value": ..., "key": ..., "headers": {...}}')
        value = data["value"]
        raw: bytes | None = None  # null: a tombstone
        if value is not None:
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
        headers_list.append(("ce_id", str(data[id_field]).encode()))
    value = line.strip().encode()
    if cloudevents is None:
        return OutgoingRecord(topic, key_bytes, value, tuple(headers_list))
    event_id = headers_list[0][1].decode() if headers_list else hashlib.sha256(value).hexdigest()
    return _cloud_event_record(topic, key_bytes, data, event_id, cloudevents)


def _cloud_event_record(
    topic: str, key: bytes | None, data: Any, event_id: str, options: CloudEventsOptions
) -> OutgoingRecord:
    from cloudevents.core.bindings import kafka as ce_kafka
    from cloudevents.core.v1.event import CloudEvent

    event = CloudEvent(
        {
            "id": event_id,
            "source": options.source,
            "type": options.type,
            "datacontenttype": "application/json",
        },
        data,
    )
    if options.mode == CloudEventsMode.BINARY:
        wire = ce_kafka.to_binary_event(event, key_mapper=lambda _e: None)
    else:
        wire = ce_kafka.to_structured_event(event, key_mapper=lambda _e: None)
    return OutgoingRecord(topic, key, wire.value, tuple(wire.headers.items()))


@cli.command()
def produce(
    topic: Annotated[str, typer.Argument(help="Destination topic or queue.")],
    file: Annotated[str, typer.Argument(help="JSON-lines file, or - for standard input.")],
    key: Annotated[str | None, typer.Option(help="Payload field to use as record key.")] = None,
    id: Annotated[
        str | None,
        typer.Option(
            "--id", help="Payload field copied to the `ce_id` header (the CloudEvents id)."
        ),
    ] = None,
    envelope: Annotated[
        bool,
        typer.Option(
            help='Lines are {"key", "value", "headers"} envelopes; "value": null is a tombstone.'
        ),
    ] = False,
    cloudevents: Annotated[
        CloudEventsMode | None,
        typer.Option(
            "--cloudevents",
            help="Write each line as the data of a CloudEvent: `binary` (ce_* headers) or "
            "`structured` (application/cloudevents+json).",
        ),
    ] = None,
    ce_type: Annotated[
        str, typer.Option(help="CloudEvents `type` with --cloudevents.")
    ] = "agentstream.produce",
    ce_source: Annotated[
        str, typer.Option(help="CloudEvents `source` with --cloudevents.")
    ] = "/agentstream/produce",
    broker: Annotated[
        str | None, typer.Option(envvar="AGENTSTREAM_BROKER", help="Broker URL.")
    ] = None,
) -> None:
    """Publish each line of FILE as one record."""
    if envelope and cloudevents is not None:
        err_console.print("[red]--envelope and --cloudevents do not go together[/red]")
        raise typer.Exit(2)
    options = None if cloudevents is None else CloudEventsOptions(cloudevents, ce_type, ce_source)
    try:
        stream = sys.stdin if file == "-" else Path(file).open(encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    with stream:
        lines = [ln for ln in stream if ln.strip()]
    records: list[OutgoingRecord] = []
    for n, line in enumerate(lines, 1):
        try:
            records.append(
                record_from_line(
                    topic,
                    line,
                    key_field=key,
                    id_field=id,
                    envelope=envelope,
                    cloudevents=options,
                )
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
