"""Settings the chaos apps share, read from the CHAOS_* environment the harness sets."""

from __future__ import annotations

import os
from typing import Any

from agentstream import Retry, RuntimeConfig

env = os.environ.get


def runtime_config() -> RuntimeConfig:
    """Short leases and timeouts, so kills are noticed quickly."""
    return RuntimeConfig(
        lease_s=float(env("CHAOS_LEASE_S", "2")),
        session_timeout_s=float(env("CHAOS_SESSION_S", "2")),
        heartbeat_s=0.3,
        commit_interval_s=0.1,
        shutdown_grace_s=2,
        revoke_grace_s=1,
        partitions=int(env("CHAOS_PARTITIONS", "8")),
    )


def agent_options() -> dict[str, Any]:
    """The triage agent's source, key, identity, outputs, concurrency and retries."""
    return {
        "source": env("CHAOS_SOURCE", "tickets"),
        "key": lambda t: t.customer_id,
        "identity": lambda t: t.ticket_id,
        "output": env("CHAOS_OUTPUT", "decisions"),
        "dead_letter": env("CHAOS_DLQ", "tickets.dlq"),
        "concurrency": int(env("CHAOS_CONCURRENCY", "16")),
        "retry": Retry(attempts=25, backoff_initial=0.05, backoff_max=0.5),
    }
