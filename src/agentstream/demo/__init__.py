"""agentstream.demo."""
