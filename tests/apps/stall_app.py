"""An app for the broker-stall test: each event emits one output of its key, in order.

Broker and journal come from ``--broker`` / ``--store``; ``STALL_NAME`` prefixes the topics.
"""

from __future__ import annotations

import asyncio
import os

from agentstream import App, Context, RuntimeConfig

NAME = os.environ.get("STALL_NAME", "stall")

app = App(
    NAME,
    config=RuntimeConfig(
        session_timeout_s=6.0,
        heartbeat_s=1.0,
        commit_interval_s=0.2,
        shutdown_grace_s=2.0,
        partitions=4,
        publish_unhealthy_s=float(os.environ.get("STALL_PUBLISH_UNHEALTHY_S", "60")),
        publish_exit_s=float(os.environ.get("STALL_PUBLISH_EXIT_S", "300")),
    ),
)


@app.agent(
    source=f"{NAME}-in",
    output=f"{NAME}-out",
    key=lambda p: p["key"],
    identity=lambda p: p["id"],
    concurrency=4,
)
async def relay_order(ctx: Context, payload: dict) -> dict:
    # Slow enough that events complete (and outputs queue in the outbox) during the stall.
    await asyncio.sleep(0.5)
    return {"key": payload["key"], "n": payload["n"]}
