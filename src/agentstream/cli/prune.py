"""``agentstream prune``: delete finished journal history past the retention horizon.

The horizon is the longer of the journal retention (``RuntimeConfig.retention_s`` or
``--older-than``) and the broker's redelivery horizon (``RuntimeConfig.broker_retention_s`` or
``--broker-retention``): an event the broker can still redeliver keeps its journal row, so it
is still recognised as a duplicate. Only completed events whose outputs are published, closed
dead letters and old shadow runs go; dead, pending and claimed events, open dead letters and
parked events never do.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from agentstream.backends import Backends
from agentstream.cli._app import cli, console, err_console, load_app, run_async
from agentstream.cli._inspect import BrokerOption, StoreOption, fmt_time, open_store, urls
from agentstream.config import RuntimeConfig

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` or a bare number of seconds."""
    text = text.strip()
    try:
        if text and text[-1] in _UNITS:
            return float(text[:-1]) * _UNITS[text[-1]]
        return float(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: use 90s, 30m, 12h, 7d or 2w") from exc


def horizon(retention_s: float, broker_retention_s: float) -> tuple[float, bool]:
    """The effective retention, and whether the broker's horizon raised it."""
    return max(retention_s, broker_retention_s), broker_retention_s > retention_s


@cli.command()
def prune(
    target: Annotated[
        str | None, typer.Argument(help="The app (MODULE:APP): its URLs and retention settings.")
    ] = None,
    older_than: Annotated[
        str | None, typer.Option(help="Journal retention (default: the app's retention_s).")
    ] = None,
    broker_retention: Annotated[
        str | None,
        typer.Option(help="The broker's redelivery horizon (default: broker_retention_s)."),
    ] = None,
    store: StoreOption = None,
    broker: BrokerOption = None,
) -> None:
    """Delete completed journal history older than the retention horizon."""
    config = RuntimeConfig()
    if target is not None:
        app = load_app(target)
        config = app.config
        broker = broker or app.broker_url
        store = store or app.store_url
    retention = parse_duration(older_than) if older_than else config.retention_s
    broker_s = parse_duration(broker_retention) if broker_retention else config.broker_retention_s
    effective, raised = horizon(retention, broker_s)
    if raised:
        err_console.print(
            f"retention {retention:.0f}s is shorter than the broker's redelivery horizon "
            f"({broker_s:.0f}s); keeping {effective:.0f}s so duplicates are still recognised"
        )
    before = time.time() - effective

    async def go() -> dict[str, int]:
        async with open_store(Backends(*urls(store, broker))) as s:
            return await s.prune(before=before)

    deleted = run_async(go())
    summary = ", ".join(f"{n} {table}" for table, n in deleted.items())
    console.print(f"pruned history finished before {fmt_time(before)} UTC: {summary}")
