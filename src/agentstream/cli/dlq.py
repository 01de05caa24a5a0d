"""``agentstream dlq``: list, inspect, redrive and discard dead letters."""

from __future__ import annotations

import os
import socket
from typing import Annotated, Any

import typer
from rich.table import Table

from agentstream.backends import Backends
from agentstream.cli._app import NotFound, cli, console, err_console, run_async
from agentstream.cli._inspect import (
    BrokerOption,
    JsonOption,
    StoreOption,
    dumps,
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
from agentstream.journal.blobs import expand_steps
from agentstream.journal.records import DeadLetterRecord, RedriveMode
from agentstream.journal.store import Store
from agentstream.redrive import RedriveResult, discard, redrive
from agentstream.runtime.relay import OutboxRelay

dlq = typer.Typer(help="Dead letters: list, show, redrive, discard.", no_args_is_help=True)
cli.add_typer(dlq, name="dlq")

AgentOption = Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")]
ClassOption = Annotated[str | None, typer.Option("--class", "-c", help="Only this failure class.")]
KeyOption = Annotated[str | None, typer.Option("--key", "-k", help="Only this ordering key.")]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Created at or after (2h, 7d, ISO time).")
]
UntilOption = Annotated[str | None, typer.Option("--until", help="Created before (2h, ISO time).")]


async def _select(
    store: Store,
    *,
    ids: list[int],
    agent: str | None,
    failure_class: str | None,
    key: str | None,
    since: str | None,
    until: str | None,
    status: str | None,
    limit: int | None,
) -> list[DeadLetterRecord]:
    if ids:
        found = [await store.get_dead_letter(i) for i in ids]
        missing = [i for i, f in zip(ids, found, strict=True) if f is None]
        if missing:
            raise NotFound(f"no dead letter with id {missing}")
        return [f for f in found if f is not None]
    return await store.dead_letters(
        agent=agent,
        status=status,
        failure_class=failure_class,
        key=key,
        since=parse_time(since),
        until=parse_time(until),
        limit=limit,
    )


@dlq.command("list")
def list_(
    agent: AgentOption = None,
    failure_class: ClassOption = None,
    key: KeyOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    status: Annotated[
        str | None, typer.Option(help="dead, redriven, resolved, superseded or discarded.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Most rows.")] = 100,
    store: StoreOption = None,
    broker: BrokerOption = None,
    as_json: JsonOption = False,
) -> None:
    """List dead letters, newest first."""

    async def go() -> list[DeadLetterRecord]:
        async with open_store(Backends(*urls(store, broker))) as s:
            return await _select(
                s,
                ids=[],
                agent=agent,
                failure_class=failure_class,
                key=key,
                since=since,
                until=until,
                status=status,
                limit=limit,
            )

    letters = run_async(go())
    if as_json:
        console.print_json(dumps([_letter_json(d) for d in letters]))
        return
    table = Table(title=f"{len(letters)} dead letter(s)")
    for col in ("id", "agent", "event", "class", "key", "status", "attempts", "cost", "created"):
        table.add_column(col)
    for d in letters:
        table.add_row(
            str(d.id),
            d.agent,
            d.event_id,
            d.failure_class,
            d.key or "-",
            d.status,
            str(d.envelope.get("attempts", "-")),
            f"${float(d.envelope.get('cost_usd', 0.0)):.4f}",
            fmt_time(d.created_at),
        )
    console.print(table)


def _letter_json(d: DeadLetterRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "agent": d.agent,
        "event_id": d.event_id,
        "failure_class": d.failure_class,
        "key": d.key,
        "status": d.status,
        "created_at": d.created_at,
        "envelope": d.envelope,
    }


@dlq.command()
def show(
    dead_letter_id: Annotated[int, typer.Argument(help="Dead letter id (from `dlq list`).")],
    store: StoreOption = None,
    broker: BrokerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a dead letter: its envelope and the event's journal (LLM attempts, effects, keys)."""

    async def go() -> dict[str, Any]:
        async with open_store(Backends(*urls(store, broker))) as s:
            letter = await s.get_dead_letter(dead_letter_id)
            if letter is None:
                raise NotFound(f"no dead letter with id {dead_letter_id}")
            return {
                "letter": letter,
                "event": await s.get_event(letter.agent, letter.event_id),
                "steps": await expand_steps(s, await s.steps(letter.agent, letter.event_id)),
                "failures": await s.failures(letter.agent, letter.event_id),
                "outbox": await s.outbox(letter.agent, letter.event_id),
            }

    found = run_async(go())
    letter: DeadLetterRecord = found["letter"]
    steps = found["steps"]
    env = letter.envelope
    if as_json:
        console.print_json(
            dumps(
                {
                    **_letter_json(letter),
                    "state": None if found["event"] is None else str(found["event"].state),
                    "steps": [step_json(s) for s in steps],
                    "outbox": [outbox_json(r) for r in found["outbox"]],
                }
            )
        )
        return
    calls, tokens, cost = usage_of(steps)
    exc = env.get("exception") or {}
    src = env.get("source") or {}
    console.print(
        key_value_table(
            f"dead letter {letter.id}",
            [
                ("agent", f"{letter.agent} (version {env.get('agent_version')})"),
                ("event", f"{letter.event_id} (identity from {env.get('identity_source')})"),
                ("event state", None if found["event"] is None else found["event"].state),
                ("status", letter.status),
                ("key", letter.key),
                ("failure class", letter.failure_class),
                ("exception", f"{exc.get('type')}: {exc.get('message')}"),
                ("attempts", env.get("attempts")),
                (
                    "first / last failure",
                    f"{fmt_time(env.get('first_failure_at'))} / "
                    f"{fmt_time(env.get('last_failure_at'))}",
                ),
                ("source", f"{src.get('topic')}[{src.get('partition')}]@{src.get('offset')}"),
                ("consumer group", env.get("consumer_group")),
                ("model / prompt", f"{env.get('model')} / {env.get('prompt_version')}"),
                ("LLM calls / tokens / cost", f"{calls} / {tokens} / ${cost:.6f}"),
                ("idempotency keys", ", ".join(env.get("idempotency_keys") or []) or "-"),
            ],
        )
    )
    for f in env.get("failures") or []:
        console.print(
            f"[dim]attempt {f['attempt']} {fmt_time(f['at'])}[/dim] "
            f"[red]{f['failure_class']}[/red] {f['error_type']}: {f['message']}"
        )
    if steps:
        console.print(render_steps(steps))
    if exc.get("traceback"):
        console.print(f"[dim]{exc['traceback']}[/dim]")


@dlq.command("redrive")
def redrive_(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids.")] = None,
    mode: Annotated[
        RedriveMode, typer.Option(help="resume: keep recorded steps; fresh: start over.")
    ] = RedriveMode.RESUME,
    agent: AgentOption = None,
    failure_class: ClassOption = None,
    key: KeyOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    all_matching: Annotated[
        bool, typer.Option("--all", help="Redrive every open dead letter matching the filters.")
    ] = False,
    publish: Annotated[
        bool, typer.Option(help="Publish the re-queued messages now (else a worker's relay will).")
    ] = True,
    dry_run: Annotated[bool, typer.Option(help="Only list what would be redriven.")] = False,
    store: StoreOption = None,
    broker: BrokerOption = None,
) -> None:
    """Send dead events through the normal gates again (after a fix).

    By id, or by filter with --all. A completed event is never run again.
    """
    if not ids and not all_matching:
        raise typer.BadParameter("give dead letter ids, or filters and --all")
    _operate(
        "redrive",
        ids or [],
        agent,
        failure_class,
        key,
        since,
        until,
        mode,
        publish,
        dry_run,
        store,
        broker,
    )


@dlq.command("discard")
def discard_(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids.")] = None,
    agent: AgentOption = None,
    failure_class: ClassOption = None,
    key: KeyOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    all_matching: Annotated[
        bool, typer.Option("--all", help="Discard every open dead letter matching the filters.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Only list what would be discarded.")] = False,
    store: StoreOption = None,
    broker: BrokerOption = None,
) -> None:
    """Close dead letters for good (the event stays dead; a strict key is released)."""
    if not ids and not all_matching:
        raise typer.BadParameter("give dead letter ids, or filters and --all")
    _operate(
        "discard",
        ids or [],
        agent,
        failure_class,
        key,
        since,
        until,
        RedriveMode.RESUME,
        False,
        dry_run,
        store,
        broker,
    )


def _operate(
    action: str,
    ids: list[int],
    agent: str | None,
    failure_class: str | None,
    key: str | None,
    since: str | None,
    until: str | None,
    mode: RedriveMode,
    publish: bool,
    dry_run: bool,
    store: str | None,
    broker: str | None,
) -> None:
    backends = Backends(*urls(store, broker))

    async def go() -> tuple[list[DeadLetterRecord], list[RedriveResult], int]:
        async with open_store(backends) as s:
            letters = await _select(
                s,
                ids=ids,
                agent=agent,
                failure_class=failure_class,
                key=key,
                since=since,
                until=until,
                status=None if ids else "dead",
                limit=None,
            )
            if dry_run:
                return letters, [], 0
            if action == "redrive":
                results = await redrive(s, letters, mode=mode)
            else:
                results = await discard(s, letters)
            published = 0
            if publish and any(r.done for r in results):
                transport = backends.transport()
                await transport.start()
                try:
                    relay = OutboxRelay(
                        s, transport, owner=f"cli:{socket.gethostname()}:{os.getpid()}"
                    )
                    published = await relay.flush()
                finally:
                    await transport.close()
            return letters, results, published

    letters, results, published = run_async(go())
    if dry_run:
        for d in letters:
            console.print(f"would {action} {d.id} {d.agent}/{d.event_id} ({d.failure_class})")
        console.print(f"{len(letters)} dead letter(s) match")
        return
    for r in results:
        if r.done:
            console.print(f"{action} {r.dead_letter_id} {r.agent}/{r.event_id}: done")
        else:
            err_console.print(
                f"{action} {r.dead_letter_id} {r.agent}/{r.event_id}: nothing to do ({r.reason})"
            )
    done = sum(r.done for r in results)
    suffix = f", {published} record(s) published" if action == "redrive" and publish else ""
    past = {"redrive": "redriven", "discard": "discarded"}[action]
    console.print(f"{done} of {len(results)} dead letter(s) {past}{suffix}")
