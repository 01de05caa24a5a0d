"""An agent that kills its own worker on one poison ticket, every time it sees it."""

from __future__ import annotations

import os
import signal

from agentstream import App, Context, Retry, RuntimeConfig
from tests.runtime.helpers import Ticket

app = App(
    "crashloop",
    broker=os.environ.get("CRASH_DB"),
    config=RuntimeConfig(
        lease_s=1.0, session_timeout_s=1.5, heartbeat_s=0.2, commit_interval_s=0.05
    ),
)


@app.agent(
    source="tickets",
    key=lambda t: t.customer_id,
    identity=lambda t: t.ticket_id,
    retry=Retry(attempts=3),
    dead_letter="dlq",
)
async def crashy(ctx: Context, t: Ticket) -> str:
    if t.text == "segfault":
        os.kill(os.getpid(), signal.SIGKILL)
    return t.ticket_id
