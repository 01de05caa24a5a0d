"""``agentstream status``: events per state, dead letters, parked keys, lag and live metrics.

From the journal: events per state, open dead letters by failure class, parked events, model
calls, tokens and cost. From the broker: committed offset, end and lag per partition. From a
running worker's ``/metrics`` endpoint (``--metrics URL``): deliveries, duplicates, calls
avoided, retries, rate-limit waits, divergences, in flight.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.table import Table

from agentstream.backends import Backends
from agentstream.cli._app import cli, console, load_app, run_async
from agentstream.cli._inspect import urls
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
    metrics: Annotated[
        list[str] | None,
        typer.Option(help="A worker's metrics URL (http://host:port/metrics); repeatable."),
    ] = None,
) -> None:
    """Show events per state, dead letters, parked events, usage, lag and live counters."""
    groups: dict[str, tuple[str, list[str]]] = {}
    if target is not None:
        app = load_app(target)
        broker = broker or app.broker_url
        store = store or app.store_url
        groups = {s.name: (app.group_of(s), [s.source]) for s in app.agents.values()}
    broker, store = urls(store, broker)
    run_async(_status(broker, store, groups))
    if metrics:
        _show_metrics(metrics)


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
        open_letters = await store.dead_letters(status="dead", limit=None)
    finally:
        await store.close()
    table = Table(title=f"journal {store_url}")
    columns = ("agent", "completed", "in flight", "pending retry", "dead", "open DLQ", "parked")
    for col in columns:
        table.add_column(col, justify="right" if col != "agent" else "left")
    for agent, c in counts.items():
        table.add_row(
            agent,
            str(c["completed"]),
            str(c["claimed"]),
            str(c["pending"]),
            str(c["dead"]),
            str(c.get("dead_letters_open", c["dead_letters"])),
            str(c.get("parked", 0)),
        )
    console.print(table)
    if open_letters:
        by_class = Counter((d.agent, d.failure_class) for d in open_letters)
        dlq = Table(title="open dead letters by class")
        for col in ("agent", "failure class", "count"):
            dlq.add_column(col)
        for (agent, cls), n in sorted(by_class.items()):
            dlq.add_row(agent, cls, str(n))
        console.print(dlq)
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


_LIVE: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("deliveries", "agentstream_deliveries_total", {}),
    ("completed", "agentstream_deliveries_total", {"outcome": "completed"}),
    ("duplicates detected", "agentstream_duplicates_total", {}),
    ("LLM calls made", "agentstream_llm_calls_total", {}),
    ("LLM calls avoided", "agentstream_llm_calls_avoided_total", {}),
    ("tokens", "agentstream_llm_tokens_total", {}),
    ("cost (USD)", "agentstream_llm_cost_usd_total", {}),
    ("unpriced LLM calls", "agentstream_llm_unpriced_calls_total", {}),
    ("retries", "agentstream_retries_total", {}),
    ("dead letters", "agentstream_dead_letters_total", {}),
    ("parked", "agentstream_deliveries_total", {"outcome": "parked"}),
    ("rate-limit waits", "agentstream_rate_limit_waits_total", {}),
    ("divergences", "agentstream_divergences_total", {}),
    ("in flight", "agentstream_in_flight", {}),
    ("consumer lag", "agentstream_consumer_lag", {}),
)


def _show_metrics(urls: list[str]) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    totals = dict.fromkeys((label for label, _, _ in _LIVE), 0.0)
    for url in urls:
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError as exc:
            console.print(f"[red]cannot scrape {url}: {exc}[/red]")
            continue
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        for label, name, want in _LIVE:
            totals[label] += sum(
                s.value
                for s in samples
                if s.name == name and all(s.labels.get(k) == v for k, v in want.items())
            )
    table = Table(title=f"live counters from {len(urls)} worker(s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, value in totals.items():
        table.add_row(label, f"{value:.6f}" if label.startswith("cost") else f"{value:.0f}")
    console.print(table)


def _fmt(value: int | None) -> str:
    return "-" if value is None else str(value)
