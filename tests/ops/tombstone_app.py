"""An app for ``agentstream run`` in the tombstone tests: its payload type cannot be None.

Configured by environment: ``TOMBSTONE_TEST_NAME`` (app and topic prefix); broker and journal
come from ``--broker`` / ``--store``.
"""

from __future__ import annotations

import os

from agentstream import App, Context
from tests.runtime.helpers import FAST, Ticket

NAME = os.environ["TOMBSTONE_TEST_NAME"]

app = App(NAME, config=FAST)


@app.agent(source=f"{NAME}-tickets", dead_letter=f"{NAME}-tickets.dlq")
async def work(ctx: Context, t: Ticket) -> str:
    return t.ticket_id
