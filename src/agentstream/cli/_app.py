"""The Typer application every command module registers on, and shared helpers."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from agentstream.app import App
from agentstream.extras import extra_of, missing_extra_message
from agentstream.failures import ConfigurationError
from agentstream.runtime.publish_watch import PublishStalled

T = TypeVar("T")

cli = typer.Typer(
    name="agentstream",
    help="Run LLM agents on Kafka, SQS or the embedded log with exactly-once decisions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich help prints a type such as <bool> after every flag.
    rich_markup_mode=None,
    add_completion=True,
)
console = Console()
err_console = Console(stderr=True)


class NotFound(ConfigurationError):
    """What a command was asked about is not there (exit code 1, not a usage error)."""


def print_error(message: str) -> None:
    """Print one ``error:`` line on stderr, not wrapped at the terminal's width."""
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one ``error:`` line on stderr and exit with ``code`` (1: an error, 2: usage)."""
    print_error(message)
    raise typer.Exit(code)


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
        if extra_of(exc) is not None:
            raise ConfigurationError(missing_extra_message(exc, f"app {target!r}")) from exc
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise typer.BadParameter(f"{target!r} is not an agentstream.App (got {type(app).__name__})")
    return app


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine, turning configuration errors into one line and exit code 1."""
    try:
        return asyncio.run(coro)
    except ConfigurationError as exc:
        fail(str(exc))
    except PublishStalled as exc:
        fail(f"outputs stalled: {exc}", code=3)


def setup_logging(level: str, label: str = "") -> None:
    """Plain log lines on stderr (``label``, e.g. ``worker 2``, on each); httpx's only at DEBUG."""
    prefix = f"[{label}] " if label else ""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet_http_clients(level)


def quiet_http_clients(level: str) -> None:
    """Httpx and httpcore log every request at INFO; keep them to WARNING unless DEBUG.

    The OpenAI and Anthropic SDKs use httpx, or from their 2026 releases its successor httpx2
    (loggers ``httpx2`` and ``httpcore2``).
    """
    if level.upper() != "DEBUG":
        for name in ("httpx", "httpcore", "httpx2", "httpcore2"):
            logging.getLogger(name).setLevel(logging.WARNING)
