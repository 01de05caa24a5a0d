"""``agentstream status``: events per state, dead letters, parked keys, waiting events, lag.

From the journal: events per state, open dead letters by failure class, parked events, the
events that wait longest (for what, since when, until when), model
calls, tokens and cost, and the model circuit breakers (open ones pause their agents). From
the broker: committed offset, end and lag per partition. From a
running worker's ``/metrics`` endpoint (``--metrics URL``): deliveries, duplicates, calls
avoided, retries, rate-limit waits, divergences, in flight.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from agentstream.backends import Backends
from agentstream.cli._app import cli, console, load_app, run_async
from agentstream.cli._inspect import JsonOption, dumps, open_store, urls
from agentstream.cli.waiting import WAITING_SHOWN, waiting_json, waiting_table
from agentstream.event import TopicPartition
from agentstream.journal.waits import WaitJournal
from agentstream.llm.breaker_state import (
    BreakerState,
    BreakerStatus,
    LocalBreakers,
)
from agentstream.llm.shared_stores import breakers_for_store
from agentstream.transports.lag import GroupInspector

if TYPE_CHECKING:
    from agentstream.journal.store import Store


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
    as_json: JsonOption = False,
) -> None:
    """Show events per state, dead letters, parked events, usage, lag and live counters."""
    groups: dict[str, tuple[str, list[str]]] = {}
    if target is not None:
        app = load_app(target)
        broker = broker or app.broker_url
        store = store or app.store_url
        groups = {s.name: (app.group_of(s), [s.source]) for s in app.agents.values()}
    broker, store = urls(store, broker)
    run_async(_status(broker, store, groups, as_json))
    if metrics:
        _show_metrics(metrics)


async def _status(
    broker: str, store_url: str, groups: dict[str, tuple[str, list[str]]], as_json: bool
) -> None:
    backends = Backends(broker, store_url)
    async with open_store(backends) as store:
        agents = sorted({*groups, *await store.agents()})
        counts = {a: await store.counts(a) for a in agents} if agents else {}
        if not agents:
            counts = {"(all)": await store.counts()}
        open_letters = await store.dead_letters(status="dead", limit=None)
        breakers = await _breakers(store)
        backlog, oldest = await store.outbox_backlog()
        unpriced = await store.unpriced_calls()
        waiting = await store.waiting(limit=WAITING_SHOWN) if isinstance(store, WaitJournal) else []
    by_class = Counter((d.agent, d.failure_class) for d in open_letters)
    lags = await _lags(backends, groups) if groups else None
    if as_json:
        print(
            dumps(
                {
                    "journal": store_url,
                    "broker": broker,
                    "agents": counts,
                    "open_dead_letters": [
                        {"agent": a, "failure_class": cls, "count": n}
                        for (a, cls), n in sorted(by_class.items())
                    ],
                    "lag": lags,
                    "waiting": waiting_json(waiting),
                    "outbox": {"pending": backlog, "oldest_created_at": oldest},
                    "unpriced_calls": [
                        {"agent": a, "model": m, "count": n}
                        for (a, m), n in sorted(unpriced.items())
                    ],
                    "breakers": {
                        name: {
                            "state": str(b.status),
                            "failures": b.failures,
                            "opened_at": b.opened_at,
                            "reason": b.reason,
                        }
                        for name, b in breakers.items()
                    },
                }
            )
        )
        return
    table = Table(title=f"journal {store_url}")
    # the waiting column appears only when some event waits, so the table of a journal without
    # waits reads (and parses) as it always has
    show_waiting = any(c.get("waiting", 0) for c in counts.values())
    columns = (
        "agent",
        "completed",
        "in flight",
        "pending retry",
        "dead",
        "open DLQ",
        "parked",
        *(("waiting",) if show_waiting else ()),
    )
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
            *((str(c.get("waiting", 0)),) if show_waiting else ()),
        )
    console.print(table)
    age = f", the oldest written {time.time() - oldest:.0f}s ago" if oldest is not None else ""
    console.print(f"outbox: {backlog} output(s) waiting to be published{age}")
    if open_letters:
        dlq = Table(title="open dead letters by class")
        for col in ("agent", "failure class", "count"):
            dlq.add_column(col)
        for (agent, cls), n in sorted(by_class.items()):
            dlq.add_row(agent, cls, str(n))
        console.print(dlq)
    if waiting:
        total = sum(c.get("waiting", 0) for c in counts.values())
        console.print(waiting_table(waiting, total))
    if unpriced:
        priced = Table(title="model calls no price source knows (counted as $0)")
        for col in ("agent", "model", "calls"):
            priced.add_column(col)
        for (agent, model), n in sorted(unpriced.items()):
            priced.add_row(agent, model, str(n))
        console.print(priced)
    if breakers:
        _show_breakers(breakers)
    if lags is None:
        return
    if not lags:
        console.print(f"(lag is not available for {broker})")
        return
    lag = Table(title=f"consumer lag on {broker}")
    for col in ("agent", "group", "partition", "committed", "end", "lag"):
        lag.add_column(col)
    for row in lags:
        lag.add_row(*(_fmt(row[k]) for k in ("agent", "group", "partition", "committed", "end")),
                    _fmt(row["lag"]))  # fmt: skip
    console.print(lag)


async def _lags(
    backends: Backends, groups: dict[str, tuple[str, list[str]]]
) -> list[dict[str, Any]]:
    """Committed offset, end and lag per partition of each agent's group (empty: not known)."""
    transport = backends.transport()
    if not isinstance(transport, GroupInspector):
        return []
    await transport.start()
    rows: list[dict[str, Any]] = []
    try:
        for agent, (group, topics) in groups.items():
            offsets = await transport.group_offsets(group, topics)
            for tp, (committed, end) in sorted(offsets.items()):
                rows.append(
                    {
                        "agent": agent,
                        "group": group,
                        "partition": str(TopicPartition(*tp)),
                        "committed": committed,
                        "end": end,
                        "lag": None
                        if committed is None or end is None
                        else max(0, end - committed),
                    }
                )
    finally:
        await transport.close()
    return rows


async def _breakers(store: Store) -> dict[str, BreakerState]:
    """The model circuit breakers shared through the journal (none before the first run)."""
    shared = breakers_for_store(store)
    if isinstance(shared, LocalBreakers):
        return {}
    try:
        await shared.open()
        try:
            return await shared.all()
        finally:
            await shared.close()
    except Exception as exc:  # an older journal, or no access to the table: status still shows
        console.print(f"(model breakers unavailable: {exc})")
        return {}


def _show_breakers(breakers: dict[str, BreakerState]) -> None:
    now = time.time()
    table = Table(title="model circuit breakers (ENDPOINT/MODEL)")
    for col in ("breaker", "state", "failures in a row", "open for", "why"):
        table.add_column(col)
    for name, b in breakers.items():
        closed = b.status == BreakerStatus.CLOSED
        table.add_row(
            name,
            str(b.status),
            str(b.failures),
            "-" if closed else f"{now - b.opened_at:.0f}s",
            "" if closed else b.reason,
        )
    console.print(table)
    if any(b.status != BreakerStatus.CLOSED for b in breakers.values()):
        console.print(
            "consumption is paused for agents whose model's breaker is open (calls wait for the "
            "provider; no attempt is spent), unless they have a fallback model"
        )


_LIVE: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("deliveries", "agentstream_deliveries_total", {}),
    ("completed", "agentstream_deliveries_total", {"outcome": "completed"}),
    ("duplicates detected", "agentstream_deliveries_total", {"outcome": "duplicate"}),
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
    ("paused: provider outage", "agentstream_paused_by", {"cause": "provider_outage"}),
    ("paused: LLM capacity", "agentstream_paused_by", {"cause": "llm_capacity"}),
    ("paused: buffer full", "agentstream_paused_by", {"cause": "buffer_full"}),
    ("provider-outage waits (s)", "agentstream_provider_outage_wait_seconds_total", {}),
    ("outbox pending", "agentstream_outbox_pending", {}),
    ("outbox oldest row age (s)", "agentstream_outbox_oldest_age_seconds", {}),
    ("outbox stalled (s)", "agentstream_outbox_stalled_seconds", {}),
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


def _fmt(value: object) -> str:
    return "-" if value is None else str(value)
