"""``agentstream journal``: list and inspect any event in the journal."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from agentstream.backends import Backends
from agentstream.cli._app import NotFound, cli, console, run_async
from agentstream.cli._inspect import (
    BrokerOption,
    JsonOption,
    StoreOption,
    dumps,
    event_json,
    fmt_time,
    key_value_table,
    open_store,
    outbox_json,
    parse_time,
    render_steps,
    step_json,
    urls,
    usage_of,
)
from agentstream.cli.waiting import signals_lines
from agentstream.journal.blobs import expand_steps
from agentstream.journal.records import EventRecord, EventState
from agentstream.journal.waits import WaitJournal
from agentstream.replay.history import export_history, import_history

journal = typer.Typer(help="Inspect events in the journal.", no_args_is_help=True)
cli.add_typer(journal, name="journal")


@journal.command("list")
def list_(
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")] = None,
    state: Annotated[
        EventState | None, typer.Option(help="pending, claimed, completed or dead.")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", "-k", help="Only this ordering key.")] = None,
    since: Annotated[str | None, typer.Option(help="First seen at or after (2h, ISO).")] = None,
    until: Annotated[str | None, typer.Option(help="First seen before (2h, ISO).")] = None,
    limit: Annotated[int, typer.Option(help="Most rows.")] = 50,
    store: StoreOption = None,
    broker: BrokerOption = None,
    as_json: JsonOption = False,
) -> None:
    """List events, most recently updated first."""

    async def go() -> list[EventRecord]:
        async with open_store(Backends(*urls(store, broker))) as s:
            return await s.list_events(
                agent=agent,
                state=state,
                key=key,
                since=parse_time(since),
                until=parse_time(until),
                limit=limit,
            )

    events = run_async(go())
    if as_json:
        console.print_json(dumps([event_json(e) for e in events]))
        return
    table = Table(title=f"{len(events)} event(s)")
    for col in ("agent", "event", "state", "outcome", "key", "source", "attempts", "updated"):
        table.add_column(col)
    for e in events:
        table.add_row(
            e.agent,
            e.event_id,
            str(e.state),
            e.outcome or "-",
            e.key or "-",
            f"{e.topic}[{e.partition}]@{e.offset}",
            str(e.attempts),
            fmt_time(e.updated_at),
        )
    console.print(table)


@journal.command()
def show(
    event_id: Annotated[str, typer.Argument(help="The event's identity.")],
    agent: Annotated[
        str | None, typer.Option("--agent", "-a", help="Its agent (needed if several have it).")
    ] = None,
    store: StoreOption = None,
    broker: BrokerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one event: its row, source message, steps, failures, outputs and dead letters."""

    async def go() -> dict[str, Any]:
        async with open_store(Backends(*urls(store, broker))) as s:
            found = await s.list_events(agent=agent, event_ids=[event_id], limit=None)
            if not found:
                raise NotFound(f"no event {event_id!r} in the journal")
            if len(found) > 1:
                agents = sorted(e.agent for e in found)
                raise typer.BadParameter(f"event {event_id!r} exists for {agents}; pass --agent")
            event = found[0]
            return {
                "event": event,
                "steps": await expand_steps(s, await s.steps(event.agent, event_id)),
                "failures": await s.failures(event.agent, event_id),
                "outbox": await s.outbox(event.agent, event_id),
                "dead_letters": [
                    d
                    for d in await s.dead_letters(agent=event.agent, key=event.key, limit=None)
                    if d.event_id == event_id
                ],
                "signals": await s.signals(event.agent, event_id)
                if isinstance(s, WaitJournal)
                else [],
            }

    found = run_async(go())
    event: EventRecord = found["event"]
    if as_json:
        console.print_json(
            dumps(
                {
                    **event_json(event),
                    "steps": [step_json(s) for s in found["steps"]],
                    "failures": [f.__repr__() for f in found["failures"]],
                    "outbox": [outbox_json(r) for r in found["outbox"]],
                    "dead_letters": [
                        {"id": d.id, "status": d.status, "failure_class": d.failure_class}
                        for d in found["dead_letters"]
                    ],
                    "signals": [dataclasses.asdict(x) for x in found["signals"]],
                }
            )
        )
        return
    calls, tokens, cost = usage_of(found["steps"])
    data = event_json(event)
    msg = data.get("message") or {}
    console.print(
        key_value_table(
            f"{event.agent} / {event.event_id}",
            [
                ("state", f"{event.state} ({event.outcome or '-'})"),
                ("key", event.key),
                ("source", f"{event.topic}[{event.partition}]@{event.offset}"),
                ("identity from", event.identity_source),
                ("attempts / deliveries", f"{event.attempts} / {event.deliveries}"),
                ("epoch / owner", f"{event.epoch} / {event.owner or '-'}"),
                (
                    "first seen / completed",
                    f"{fmt_time(event.created_at)} / {fmt_time(event.completed_at)}",
                ),
                ("LLM calls / tokens / cost", f"{calls} / {tokens} / ${cost:.6f}"),
                ("message", msg.get("value_text") or msg.get("value_b64")),
                ("result", dumps(event.result) if event.result is not None else None),
            ],
        )
    )
    for f in found["failures"]:
        console.print(
            f"[dim]attempt {f.attempt} {fmt_time(f.at)}[/dim] [red]{f.failure_class}[/red] "
            f"{f.error_type}: {f.message}"
        )
    if found["steps"]:
        console.print(render_steps(found["steps"]))
    for row in found["outbox"]:
        rec = row.record
        state = "published" if row.published_at else "pending"
        value = "tombstone" if rec.value is None else repr(rec.value[:500])
        console.print(f"output #{row.seq} -> {rec.topic} ({state}): {value}")
    for d in found["dead_letters"]:
        console.print(f"dead letter {d.id}: {d.failure_class} ({d.status})")
    for line in signals_lines(found["signals"]):
        console.print(line)


@journal.command("export")
def export(
    agent: Annotated[str, typer.Option("--agent", "-a", help="The agent.")],
    path: Annotated[Path, typer.Argument(help="JSON-lines file to write.")],
    store: StoreOption = None,
    broker: BrokerOption = None,
) -> None:
    """Write an agent's completed events (message, steps, outputs) as a replayable history."""

    async def go() -> int:
        async with open_store(Backends(*urls(store, broker))) as s:
            return await export_history(s, agent, path)

    console.print(f"exported {run_async(go())} event(s) to {path}")


@journal.command("import")
def import_(
    agent: Annotated[str, typer.Option("--agent", "-a", help="The agent.")],
    path: Annotated[Path, typer.Argument(help="JSON-lines history to load.")],
    store: StoreOption = None,
    broker: BrokerOption = None,
) -> None:
    """Load a history into a journal (for replay; never into a live one you care about)."""

    async def go() -> int:
        async with open_store(Backends(*urls(store, broker)), create=True) as s:
            return await import_history(s, agent, path)

    console.print(f"imported {run_async(go())} event(s) from {path}")
