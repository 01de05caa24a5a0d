"""The ``agentstream`` command line.

Each command group lives in its own module and registers itself on :data:`cli`; this module
only assembles them.
"""

from __future__ import annotations

from agentstream.cli import demo as _demo  # noqa: F401  (registers commands)
from agentstream.cli import dlq as _dlq  # noqa: F401
from agentstream.cli import journal as _journal  # noqa: F401
from agentstream.cli import produce as _produce  # noqa: F401
from agentstream.cli import prune as _prune  # noqa: F401
from agentstream.cli import replay as _replay  # noqa: F401
from agentstream.cli import run as _run  # noqa: F401
from agentstream.cli import simulate as _simulate  # noqa: F401
from agentstream.cli import status as _status  # noqa: F401
from agentstream.cli._app import cli


def main() -> None:
    """Entry point of the ``agentstream`` script."""
    cli()


__all__ = ["cli", "main"]
