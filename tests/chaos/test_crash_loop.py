"""A message that crashes the worker cannot loop forever: attempts are counted in the journal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from agentstream import FailureClass
from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from tests.apps import crashloop_app
from tests.chaos.harness import REPO
from tests.runtime.helpers import Ticket, tickets


async def test_a_message_that_kills_the_worker_is_dead_lettered_after_its_attempts(tmp_path):
    db = tmp_path / "crash.db"
    app = crashloop_app.app
    app.broker_url = app.store_url = f"sqlite:///{db}"
    stream = [
        *tickets(5, keys=1),
        Ticket(ticket_id="POISON", customer_id="c0", text="segfault"),
        *[Ticket(ticket_id=f"A{i}", customer_id="c0", seq=i) for i in range(5)],
    ]
    await AppHarness(app).produce("tickets", stream, key=lambda t: t.customer_id)
    env = {
        **os.environ,
        "CRASH_DB": f"sqlite:///{db}",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    crashes = 0
    deadline = time.monotonic() + 90
    store = SqliteStore(db)
    await store.open()
    try:
        while time.monotonic() < deadline:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agentstream",
                    "run",
                    "tests.apps.crashloop_app:app",
                    "--log-level",
                    "ERROR",
                ],
                cwd=REPO,
                env=env,
            )
            while proc.poll() is None and (await store.counts("crashy"))["completed"] < 10:
                await asyncio.sleep(0.1)
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)
                break
            crashes += 1
            await asyncio.sleep(1.1)  # the dead worker's lease runs out
        counts = await store.counts("crashy")
        [letter] = await store.dead_letters(agent="crashy")
    finally:
        await store.close()
    # Three attempts crashed the worker; the fourth claim dead-lettered it; the key moved on
    assert crashes == 3
    assert counts["completed"] == 10 and counts["dead"] == 1
    assert letter.event_id == "POISON"
    assert letter.failure_class == FailureClass.ATTEMPTS_EXHAUSTED
    assert letter.envelope["attempts"] == 4
