"""The examples run as documented."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from agentstream.testing import AppHarness

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_the_support_triage_example_decides_every_ticket_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("examples.support_triage", None)
    module = importlib.import_module("examples.support_triage")
    module.app.broker_url = module.app.store_url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    tickets = [json.loads(line) for line in (EXAMPLES / "tickets.jsonl").read_text().splitlines()]
    async with AppHarness(module.app) as h:
        await h.produce(
            "tickets",
            tickets * 2,
            key=lambda t: t["customer_id"],
            headers=lambda t: {"id": t["ticket_id"]},
        )
        await h.wait_drained()
        outputs = h.read("triage")
    assert len(outputs) == len(tickets)
    refunds = module.payments.conn.execute("SELECT COUNT(*) FROM refunds").fetchone()[0]
    decided = sum(1 for m in outputs if json.loads(m.value)["refund"])
    assert refunds == decided
