"""The Typer application every command module registers on, and shared helpers."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

from agentstream.app import App
from agentstream.failures import ConfigurationError

T = TypeVar("T")

cli = typer.Typer(
    name="agentstream",
    help="Run LLM agents on Kafka, SQS or the embedded log with exactly-once decisions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def load_app(target: str) -> App:
    """Import ``module:attribute`` (the current directory is importable) and return the App."""
    if ":" not in target:
        raise typer.BadParameter(f"{target!r}: expected MODULE:ATTRIBUTE, e.g. myagents:app")
    module_name, attr = target.split(":", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise typer.BadParameter(f"{target!r} is not an agentstream.App (got {type(app).__name__})")
    return app


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine, turning configuration errors into a clean exit."""
    try:
        return asyncio.run(coro)
    except ConfigurationError as exc:
        err_console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def setup_logging(level: str) -> None:
    """Plain log lines on stderr."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
