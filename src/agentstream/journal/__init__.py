"""agentstream.journal."""
