"""The ``agentstream`` command line.

Each command group lives in its own module and registers itself on :data:`cli`; this module
only assembles them.
"""

from __future__ import annotations

import sys

from agentstream.cli import demo as _demo  # noqa: F401  (registers commands)
from agentstream.cli import dlq as _dlq  # noqa: F401
from agentstream.cli import journal as _journal  # noqa: F401
from agentstream.cli import produce as _produce  # noqa: F401
from agentstream.cli import prune as _prune  # noqa: F401
from agentstream.cli import replay as _replay  # noqa: F401
from agentstream.cli import run as _run  # noqa: F401
from agentstream.cli import simulate as _simulate  # noqa: F401
from agentstream.cli import status as _status  # noqa: F401
from agentstream.cli import tail as _tail  # noqa: F401
from agentstream.cli import waiting as _waiting  # noqa: F401
from agentstream.cli._app import cli, print_error
from agentstream.failures import ConfigurationError


def main() -> None:
    """Entry point of the ``agentstream`` script: a user's mistake is one line and exit code 1."""
    try:
        cli()
    except ConfigurationError as exc:
        print_error(str(exc))
        sys.exit(1)


__all__ = ["cli", "main"]
