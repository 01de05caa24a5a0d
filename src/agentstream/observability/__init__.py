"""agentstream.observability."""
