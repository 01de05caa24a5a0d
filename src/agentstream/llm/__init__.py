"""agentstream.llm."""
