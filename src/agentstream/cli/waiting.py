"""``agentstream signal``, and how waiting events and signals are shown by status and journal.

``agentstream signal APP AGENT EVENT_ID NAME --data JSON`` sends a signal to an event of an
app's agent (through :func:`agentstream.signal_sources.send_signal`, as ``app.signal`` does): the
journal is the app's (or ``--store``'s). Exit code 0 when the signal was delivered, kept for a
later wait or was a duplicate; 1, with one ``error:`` line, when the event is finished (the
signal is recorded as rejected) or unknown (the signal is kept in case it arrives).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from agentstream.backends import Backends
from agentstream.cli._app import cli, console, fail, load_app, run_async
from agentstream.cli._inspect import JsonOption, dumps, fmt_time, open_store
from agentstream.journal.signals import SignalError, send_signal
from agentstream.journal.waits import NEVER, SignalRecord, WaitingEvent, WaitJournal

__all__ = ["signal", "signals_lines", "waiting_json", "waiting_table"]

WAITING_SHOWN = 20
"""Waiting events ``agentstream status`` lists (the longest waiting first)."""


@cli.command()
def signal(
    target: Annotated[str, typer.Argument(help="The app, as MODULE:ATTRIBUTE.")],
    agent: Annotated[str, typer.Argument(help="The agent whose event waits.")],
    event_id: Annotated[str, typer.Argument(help="The event's identity.")],
    name: Annotated[str, typer.Argument(help="The signal's name (what ctx.wait_for waits for).")],
    data: Annotated[str | None, typer.Option("--data", help="The signal's data, as JSON.")] = None,
    signal_id: Annotated[
        str | None,
        typer.Option("--id", help="The signal's identity (default: from its name and data)."),
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Journal URL (default: the app's).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Send a signal to a waiting (or not yet waiting) event, applied once per signal id."""
    try:
        value = None if data is None else json.loads(data)
    except ValueError as exc:
        raise typer.BadParameter(f"--data is not JSON: {exc}") from exc
    app = load_app(target)
    app.select([agent])

    async def go() -> dict[str, Any]:
        async with open_store(Backends(app.broker_url, store or app.store_url)) as s:
            if not isinstance(s, WaitJournal):
                fail(f"journal {s!r} does not support signals")
            receipt = await send_signal(s, agent, event_id, name, value, signal_id=signal_id)
            return {
                "status": str(receipt.status),
                "signal_id": receipt.signal_id,
                "event_state": receipt.event_state,
            }

    try:
        answer = run_async(go())
    except SignalError as exc:
        fail(str(exc))
    if as_json:
        print(dumps(answer))
    else:
        console.print(
            f"signal {name!r} ({answer['signal_id']}) for {agent}/{event_id}: {answer['status']}"
        )


def _deadline(row: WaitingEvent) -> str:
    if row.wait.deadline is None or row.wait.deadline >= NEVER:
        return "-"
    return fmt_time(row.wait.deadline)


def waiting_table(rows: list[WaitingEvent], total: int) -> Table:
    """The waiting events ``status`` shows: what each waits for, since when, until when."""
    now = time.time()
    table = Table(title=f"waiting events ({total}; the {len(rows)} longest waiting)")
    for col in ("agent", "event", "key", "waits for", "since", "for", "deadline", "holds key"):
        table.add_column(col)
    for row in rows:
        what = f"signal {row.wait.name!r}" if row.wait.kind == "signal" else "timer"
        table.add_row(
            row.agent,
            row.event_id,
            row.key or "-",
            what,
            fmt_time(row.wait.since),
            f"{now - row.wait.since:.0f}s",
            _deadline(row),
            "yes" if row.wait.holds_key else "no",
        )
    return table


def waiting_json(rows: list[WaitingEvent]) -> list[dict[str, Any]]:
    """Waiting events as JSON."""
    return [
        {
            "agent": r.agent,
            "event_id": r.event_id,
            "key": r.key,
            "kind": r.wait.kind,
            "name": r.wait.name,
            "since": r.wait.since,
            "deadline": r.wait.deadline,
            "holds_key": r.wait.holds_key,
        }
        for r in rows
    ]


def signals_lines(signals: list[SignalRecord]) -> list[str]:
    """One line per signal of an event, for ``journal show``."""
    return [
        f"signal {s.name!r} ({s.signal_id}) {fmt_time(s.received_at)}: {s.status} "
        f"{json.dumps(s.data)[:200]}"
        for s in signals
    ]
