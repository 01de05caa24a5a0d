"""``agentstream run``: run an app's agents in one or several processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import typer

from agentstream.cli._app import (
    cli,
    console,
    load_app,
    quiet_http_clients,
    run_async,
    setup_logging,
)
from agentstream.cli.serve import WORKER_ID_ENV, serve, worker_label
from agentstream.extras import require


@cli.command()
def run(
    target: Annotated[str, typer.Argument(help="The app, as MODULE:ATTRIBUTE.")],
    agent: Annotated[
        list[str] | None, typer.Option("--agent", "-a", help="Run only these agents.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes to start.", min=1)] = 1,
    broker: Annotated[str | None, typer.Option(help="Override the broker URL.")] = None,
    store: Annotated[str | None, typer.Option(help="Override the journal URL.")] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port (/metrics).")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address of the metrics endpoint.")] = (
        "127.0.0.1"
    ),
    log_json: Annotated[
        bool, typer.Option(help="JSON log lines, with the event identity on every line.")
    ] = False,
    trace: Annotated[
        bool,
        typer.Option(
            help="OpenTelemetry spans and GenAI metrics, exported as OTEL_TRACES_EXPORTER and "
            "OTEL_METRICS_EXPORTER say (otlp, console, none)."
        ),
    ] = False,
    progress: Annotated[
        float, typer.Option(help="Seconds between progress lines (0: none).", min=0)
    ] = 30.0,
) -> None:
    """Consume and process until SIGTERM or SIGINT, which drain and exit 0."""
    # Until the event loop takes them over, a stop request ends the process at once, cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_now)
    if broker:
        os.environ["AGENTSTREAM_BROKER"] = broker
    if store:
        os.environ["AGENTSTREAM_STORE"] = store
    if workers > 1:
        if metrics_port:
            raise typer.BadParameter("--metrics-port serves one process; use --workers 1")
        passed_on = [f"--progress={progress:g}", "--log-json" * log_json, "--trace" * trace]
        raise typer.Exit(_supervise(target, agent or [], workers, log_level, passed_on))
    if metrics_port is not None:
        require("agentstream.observability.metrics", "--metrics-port")
    if trace:
        require("agentstream.observability.tracing", "--trace")
        require("agentstream.observability.otel_sdk", "--trace")
    if log_json:
        from agentstream.observability import configure_json_logging

        worker_id = os.environ.get(WORKER_ID_ENV)
        configure_json_logging(log_level, fields={"worker": worker_id} if worker_id else None)
        quiet_http_clients(log_level)
    else:
        setup_logging(log_level, worker_label())
    # The journal's SQLite thread and the event loop hand work back and forth constantly; the
    # default 5 ms GIL switch interval makes each hand-off wait, a 1 ms one roughly doubles
    # the journaled throughput. This process is ours, so we tune it.
    sys.setswitchinterval(0.001)
    app = load_app(target)
    if metrics_port is not None or log_json or trace:
        from agentstream.observability import observe

        observe(app, metrics_port=metrics_port, metrics_host=metrics_host, tracing=trace)
    if broker:
        app.broker_url = broker
    if store:
        app.store_url = store
    shutdown_otel = None
    if trace:
        from agentstream.observability.otel_sdk import configure_from_env

        shutdown_otel = configure_from_env(app.name)
    try:
        run_async(serve(app, agent or None, progress_s=progress))
    finally:
        if shutdown_otel is not None:
            shutdown_otel()


def _exit_now(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _supervise(target: str, agents: list[str], n: int, log_level: str, flags: list[str]) -> int:
    """Start ``n`` single-worker processes (``worker 1`` to ``worker N``), stop them together.

    SIGTERM or SIGINT is passed on to every worker, which drains; the supervisor exits 0 once
    they all have stopped, else with the worst exit code of a worker that failed on its own.
    """
    cmd = [sys.executable, "-m", "agentstream", "run", target, "--log-level", log_level]
    for name in agents:
        cmd += ["--agent", name]
    cmd += [f for f in flags if f]
    stopping = False
    procs: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for i in range(1, n + 1):
        if not stopping:
            procs.append(subprocess.Popen(cmd, env={**os.environ, WORKER_ID_ENV: str(i)}))
    console.print(
        f"started {len(procs)} worker processes: "
        + ", ".join(f"worker {i} (pid {p.pid})" for i, p in enumerate(procs, 1))
    )
    while any(p.poll() is None for p in procs):
        time.sleep(0.2)
    codes = [p.returncode for p in procs]
    return 0 if stopping or all(c == 0 for c in codes) else max(abs(c) for c in codes)
