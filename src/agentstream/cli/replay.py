"""``agentstream replay``: recorded replay and shadow re-evaluation of recorded events."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated

import typer

from agentstream.backends import Backends
from agentstream.cli._app import cli, console, err_console, load_app, run_async
from agentstream.cli._inspect import JsonOption, check_writable, open_store, parse_time
from agentstream.replay import (
    Selection,
    replay_recorded,
    replay_recorded_parallel,
    replay_shadow,
)
from agentstream.replay.report import print_recorded, print_shadow, report_html, report_json


class Mode(enum.StrEnum):
    """Replay modes."""

    RECORDED = "recorded"
    SHADOW = "shadow"


def _offsets(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    low, _, high = text.partition("-")
    try:
        return (int(low) if low else None), (int(high) if high else None)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: use FROM-TO, FROM- or -TO") from exc


@cli.command()
def replay(
    target: Annotated[str, typer.Argument(help="The app whose events are replayed (MODULE:APP).")],
    agent: Annotated[str, typer.Option("--agent", "-a", help="The agent.")],
    mode: Annotated[Mode, typer.Option(help="recorded or shadow.")] = Mode.RECORDED,
    candidate: Annotated[
        str | None, typer.Option(help="Shadow mode: the candidate app (MODULE:APP).")
    ] = None,
    candidate_agent: Annotated[
        str | None, typer.Option(help="The candidate's agent (default: same name).")
    ] = None,
    event_id: Annotated[
        list[str] | None, typer.Option("--id", help="Only these event identities.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="First seen at or after (2h, ISO).")] = None,
    until: Annotated[str | None, typer.Option(help="First seen before (2h, ISO).")] = None,
    partition: Annotated[int | None, typer.Option(help="Only this source partition.")] = None,
    offsets: Annotated[
        str | None, typer.Option(help="Source offsets FROM-TO (inclusive, with --partition).")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", "-k", help="Only this ordering key.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many events.")] = None,
    as_json: JsonOption = False,
    json_out: Annotated[
        Path | None, typer.Option("--json-out", help="Also write the JSON report to this file.")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Shadow: write the HTML report here.")
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="Shadow: the run's id.")] = None,
    fail_fast: Annotated[
        bool, typer.Option(help="Recorded: stop at the first event that does not reproduce.")
    ] = False,
    processes: Annotated[
        int, typer.Option(min=1, help="Recorded: replay on this many worker processes.")
    ] = 1,
    store: Annotated[
        str | None, typer.Option(envvar="AGENTSTREAM_STORE", help="Journal URL (default: app's).")
    ] = None,
) -> None:
    """Replay recorded events: verify outputs (recorded) or evaluate a candidate (shadow).

    Recorded mode exits 1 when any event does not reproduce byte for byte.
    """
    for option, path in (("--json-out", json_out), ("--html", html_out)):
        if path is not None:
            check_writable(path, option)
    app = load_app(target)
    low, high = _offsets(offsets)
    selection = Selection(
        event_ids=event_id or None,
        since=parse_time(since),
        until=parse_time(until),
        partition=partition,
        offset_from=low,
        offset_to=high,
        key=key,
        limit=limit,
    )
    backends = Backends(app.broker_url, store or app.store_url, app.config)
    if mode == Mode.RECORDED:

        async def recorded() -> bool:
            if processes > 1:
                if fail_fast:
                    raise typer.BadParameter("--fail-fast runs in one process (--processes 1)")
                report = await replay_recorded_parallel(
                    target, agent, backends.store_url, selection, processes=processes
                )
            else:
                async with open_store(backends) as s:
                    report = await replay_recorded(app, agent, s, selection, fail_fast=fail_fast)
            text = json.dumps(
                {
                    "agent": report.agent,
                    "model_calls": report.model_calls,
                    "seconds": report.seconds,
                    "results": [r.__dict__ for r in report.results],
                },
                indent=2,
            )
            if as_json:
                print(text)
            else:
                print_recorded(report, console)
            if json_out is not None:
                json_out.write_text(text)
            return report.ok

        if not run_async(recorded()):
            raise typer.Exit(1)
        return
    if candidate is None:
        raise typer.BadParameter("shadow mode needs --candidate MODULE:APP")
    cand_app = load_app(candidate)

    async def shadow() -> None:
        async with open_store(backends) as s:
            report = await replay_shadow(
                app,
                agent,
                cand_app,
                s,
                selection,
                candidate_agent=candidate_agent,
                candidate_name=candidate,
                run_id=run_id,
            )
        text = json.dumps(report_json(report), indent=2, ensure_ascii=False)
        if as_json:
            print(text)
        else:
            print_shadow(report, console)
        if json_out is not None:
            json_out.write_text(text)
            err_console.print(f"JSON report: {json_out}")
        if html_out is not None:
            html_out.write_text(report_html(report), encoding="utf-8")
            err_console.print(f"HTML report: {html_out}")

    run_async(shadow())
