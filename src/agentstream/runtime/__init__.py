"""agentstream.runtime."""
