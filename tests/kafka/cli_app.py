"""A module-level App for ``agentstream run`` on Kafka in subprocesses.

Configured by environment: ``KAFKA_TEST_NAME`` (app and topic prefix) and ``KAFKA_TEST_WORK``
(a folder where each handled event appends ``ticket pid``); broker and journal come from
``--broker`` / ``--store``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from agentstream import App, Context
from tests.runtime.helpers import FAST, Ticket

NAME = os.environ["KAFKA_TEST_NAME"]
RUNS = Path(os.environ["KAFKA_TEST_WORK"]) / "runs.txt"

app = App(NAME, config=FAST)


@app.agent(source=f"{NAME}-tickets", key=lambda t: t.customer_id, concurrency=2)
async def work(ctx: Context, t: Ticket) -> None:
    with RUNS.open("a") as f:
        f.write(f"{t.ticket_id} {os.getpid()}\n")
    await asyncio.sleep(0.3)
