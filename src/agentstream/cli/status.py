"""``agentstream status``: events per state, dead letters and lag, at a glance."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from agentstream.backends import DEFAULT_URL, Backends
from agentstream.cli._app import cli, console, load_app, run_async
from agentstream.event import TopicPartition
from agentstream.transports.lag import GroupInspector


@cli.command()
def status(
    target: Annotated[
        str | None, typer.Argument(help="The app (MODULE:ATTRIBUTE), to show its agents' lag.")
    ] = None,
    store: Annotated[
        str | None, typer.Option(envvar="AGENTSTREAM_STORE", help="Journal URL.")
    ] = None,
    broker: Annotated[
        str | None, typer.Option(envvar="AGENTSTREAM_BROKER", help="Broker URL.")
    ] = None,
) -> None:
    """Show events per state and dead letters per agent, and consumer lag per partition."""
    groups: dict[str, tuple[str, list[str]]] = {}
    if target is not None:
        app = load_app(target)
        broker = broker or app.broker_url
        store = store or app.store_url
        groups = {s.name: (app.group_of(s), [s.source]) for s in app.agents.values()}
    broker = broker or DEFAULT_URL
    store = store or broker
    run_async(_status(broker, store, groups))


async def _status(broker: str, store_url: str, groups: dict[str, tuple[str, list[str]]]) -> None:
    backends = Backends(broker, store_url)
    store = backends.store()
    await store.open()
    try:
        events = await store.list_events(limit=1)
        agents = sorted({*groups, *(e.agent for e in events)})
        counts = {a: await store.counts(a) for a in agents} if agents else {}
        if not agents:
            counts = {"(all)": await store.counts()}
    finally:
        await store.close()
    table = Table(title=f"journal {store_url}")
    for col in ("agent", "completed", "in flight", "pending retry", "dead", "dead letters"):
        table.add_column(col, justify="right" if col != "agent" else "left")
    for agent, c in counts.items():
        table.add_row(
            agent,
            str(c["completed"]),
            str(c["claimed"]),
            str(c["pending"]),
            str(c["dead"]),
            str(c["dead_letters"]),
        )
    console.print(table)
    if not groups:
        return
    transport = backends.transport()
    if not isinstance(transport, GroupInspector):
        console.print(f"(lag is not available for {broker})")
        return
    await transport.start()
    try:
        lag = Table(title=f"consumer lag on {broker}")
        for col in ("agent", "group", "partition", "committed", "end", "lag"):
            lag.add_column(col)
        for agent, (group, topics) in groups.items():
            offsets = await transport.group_offsets(group, topics)
            for tp, (committed, end) in sorted(offsets.items()):
                lag.add_row(
                    agent,
                    group,
                    str(TopicPartition(*tp)),
                    _fmt(committed),
                    _fmt(end),
                    _fmt(None if committed is None or end is None else max(0, end - committed)),
                )
        console.print(lag)
    finally:
        await transport.close()


def _fmt(value: int | None) -> str:
    return "-" if value is None else str(value)
