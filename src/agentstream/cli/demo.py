"""``agentstream demo``: the crisis and the fix, side by side, on the embedded defaults."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from agentstream.cli._app import cli, console, fail
from agentstream.demo.orchestrator import DemoSettings, render, run_demo

SIMULATOR_MODEL = "sim-1"


@cli.command()
def demo(
    events: Annotated[int, typer.Option(help="Support tickets in the stream.", min=20)] = 300,
    kills: Annotated[int, typer.Option(help="SIGKILLs per consumer.", min=0)] = 4,
    latency_ms: Annotated[float, typer.Option(help="Median simulated model latency.")] = 150.0,
    llm_url: Annotated[
        str | None,
        typer.Option(help="A real OpenAI-compatible endpoint instead of the simulator."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Model name sent to the --llm-url endpoint (required with it)."),
    ] = None,
    workdir: Annotated[Path, typer.Option(help="Where the demo's files go.")] = Path(
        "agentstream-demo"
    ),
) -> None:
    """Run a naive consumer and agentstream over the same duplicated, crash-ridden stream."""
    if llm_url is None:
        model = model or SIMULATOR_MODEL
    elif model in (None, SIMULATOR_MODEL):
        # The simulator's model name must never reach a real endpoint (and be billed there).
        fail(
            "--llm-url needs --model with a model your endpoint serves "
            f"({SIMULATOR_MODEL!r} is the simulator's), e.g. --model gpt-4o-mini",
            code=2,
        )
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
