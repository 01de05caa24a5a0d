"""``agentstream demo``: the crisis and the fix, side by side, on the embedded defaults."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from agentstream.cli._app import cli, console
from agentstream.demo.runner import DemoSettings, render, run_demo


@cli.command()
def demo(
    events: Annotated[int, typer.Option(help="Support tickets in the stream.", min=20)] = 300,
    kills: Annotated[int, typer.Option(help="SIGKILLs per consumer.", min=0)] = 4,
    latency_ms: Annotated[float, typer.Option(help="Median simulated model latency.")] = 150.0,
    llm_url: Annotated[
        str | None,
        typer.Option(help="A real OpenAI-compatible endpoint instead of the simulator."),
    ] = None,
    model: Annotated[str, typer.Option(help="Model name sent to the endpoint.")] = "sim-1",
    workdir: Annotated[Path, typer.Option(help="Where the demo's files go.")] = Path(
        "agentstream-demo"
    ),
) -> None:
    """Run a naive consumer and agentstream over the same duplicated, crash-ridden stream."""
    settings = DemoSettings(
        workdir=workdir.resolve(),
        events=events,
        kills=kills,
        latency_ms=latency_ms,
        llm_url=llm_url,
        model=model,
    )
    results = asyncio.run(run_demo(settings, console))
    render(results, settings, console)
