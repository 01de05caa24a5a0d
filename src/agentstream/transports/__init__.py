"""agentstream.transports."""
