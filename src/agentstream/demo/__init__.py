"""``agentstream demo``: the at-least-once + stochastic-agent crisis, and the fix, in one run."""
