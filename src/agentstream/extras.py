"""Optional extras: which ``pip install 'agentstream[...]'`` provides which import.

Backends, providers and observability import their packages only when used; when one is missing
the error names the extra and the command that installs it, in one line.
"""

from __future__ import annotations

import importlib

from agentstream.failures import ConfigurationError

#: Top-level import name -> the extra that installs it.
EXTRAS: dict[str, str] = {
    "confluent_kafka": "kafka",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "aiobotocore": "sqs",
    "botocore": "sqs",
    "anthropic": "anthropic",
    "prometheus_client": "observability",
    "opentelemetry": "observability",
}


def extra_of(exc: ImportError) -> str | None:
    """The extra that would have made this import work, if it is one of ours."""
    return EXTRAS.get((exc.name or "").split(".")[0])


def missing_extra_message(exc: ImportError, needed_for: str) -> str:
    """One line naming what failed to import, for what, and the fix.

    Args:
        exc: The import error.
        needed_for: What needed it (``"broker URL 'kafka://...'"``, ``"--metrics-port"``).
    """
    extra = extra_of(exc)
    if extra is None:
        return f"{needed_for}: cannot import {exc.name or ''} ({exc})"
    return (
        f"{needed_for} needs the {extra!r} extra ({exc.name} is not installed); "
        f"install it with: pip install 'agentstream[{extra}]'"
    )


def require(module: str, needed_for: str) -> None:
    """Import ``module`` or raise a one-line :class:`ConfigurationError` naming the extra.

    Args:
        module: Module to import.
        needed_for: What needs it, for the message.
    """
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigurationError(missing_extra_message(exc, needed_for)) from exc
