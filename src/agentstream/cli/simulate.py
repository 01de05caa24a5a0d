"""``agentstream simulate-llm``: run the LLM simulator as an OpenAI-compatible HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
from typing import Annotated

import typer

from agentstream.cli._app import cli, console, fail, setup_logging
from agentstream.llm.simulator.model import SimulatorConfig
from agentstream.llm.simulator.server import SimulatorServer


@cli.command("simulate-llm")
def simulate_llm(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).", min=0)] = 8089,
    model: Annotated[str, typer.Option(help="Model name the simulator reports.")] = "sim-1",
    rpm: Annotated[int | None, typer.Option(help="Requests per window before 429s.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per window before 429s.")] = None,
    window_s: Annotated[
        float, typer.Option(help="Rate-limit window in seconds (60: per minute).")
    ] = 60.0,
    latency_ms: Annotated[float, typer.Option(help="Median latency in milliseconds.")] = 200.0,
    latency_sigma: Annotated[
        float, typer.Option(help="Log-normal shape of the latency (0: constant).")
    ] = 0.5,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible answers.")] = None,
    error_rate: Annotated[float, typer.Option(help="Share of requests answered 5xx.")] = 0.0,
    timeout_rate: Annotated[float, typer.Option(help="Share of requests that hang.")] = 0.0,
    invalid_json_rate: Annotated[
        float, typer.Option(help="Share of structured answers that are not valid JSON.")
    ] = 0.0,
    schema_invalid_rate: Annotated[
        float, typer.Option(help="Share of structured answers that violate their schema.")
    ] = 0.0,
    refusal_rate: Annotated[float, typer.Option(help="Share of answers that refuse.")] = 0.0,
    tool_call_rate: Annotated[
        float, typer.Option(help="Chance of a tool call when tools are offered.")
    ] = 0.7,
    max_completion_tokens: Annotated[
        int, typer.Option(help="Longest free-text answer, in tokens.", min=5)
    ] = 60,
    call_log: Annotated[
        str | None, typer.Option(help="SQLite file recording every call (step key, tokens).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Serve a simulated chat-completions model (a simulator, not a real model).

    Point any OpenAI client at http://HOST:PORT/v1; counters are at /sim/stats.
    """
    setup_logging(log_level)
    config = SimulatorConfig(
        model=model,
        seed=seed,
        latency_ms=latency_ms,
        latency_sigma=latency_sigma,
        rpm=rpm,
        tpm=tpm,
        window_s=window_s,
        error_rate=error_rate,
        timeout_rate=timeout_rate,
        invalid_json_rate=invalid_json_rate,
        schema_invalid_rate=schema_invalid_rate,
        refusal_rate=refusal_rate,
        tool_call_rate=tool_call_rate,
        max_completion_tokens=max_completion_tokens,
    )
    server = SimulatorServer(config, host=host, port=port, call_log=call_log)
    try:
        asyncio.run(_serve(server))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        fail(f"port {port} on {host} is in use; pick another with --port (0 picks a free one)")


async def _serve(server: SimulatorServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    def ready() -> None:
        cfg = server.simulator.config
        console.print(
            f"LLM simulator serving {cfg.model} at {server.url} "
            f"(rpm={cfg.rpm}, tpm={cfg.tpm}, median latency {cfg.latency_ms:g} ms, "
            f"seed={cfg.seed})",
            highlight=False,
        )

    await server.serve(stop, on_ready=ready)
