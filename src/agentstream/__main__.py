"""``python -m agentstream``."""

from agentstream.cli import main

main()
