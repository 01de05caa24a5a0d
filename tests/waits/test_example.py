"""The refund-approval example runs as documented: big refunds wait for approval or escalate."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from agentstream.journal.records import EventState
from agentstream.testing import AppHarness
from tests.ops.apps import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_the_refund_approval_example_pays_approved_refunds_and_escalates_the_rest(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("examples.refund_approval", None)
    module = importlib.import_module("examples.refund_approval")
    monkeypatch.setattr(module, "APPROVAL_TIMEOUT_S", 2.0)  # 24 h in production
    app = module.app
    app.broker_url = app.store_url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    requests = [
        json.loads(ln) for ln in (EXAMPLES / "refund_requests.jsonl").read_text().splitlines()
    ]
    async with AppHarness(app) as h:
        await h.produce("refund-requests", requests, key=lambda r: r["customer_id"])
        store = app.backends().store()
        await store.open()
        try:

            async def waits(event_id: str) -> bool:
                record = await store.get_event("refunds", event_id)
                return record is not None and record.state == EventState.WAITING

            await wait_for(lambda: waits("R-2"))
            await app.signal("refunds", "R-2", "approval", {"approved": True, "by": "ann"})
            await wait_for(lambda: len(h.read("refund-resolutions")) == 4)
        finally:
            await store.close()
        resolutions = {
            json.loads(m.value)["request_id"]: json.loads(m.value)
            for m in h.read("refund-resolutions")
        }
    assert {k: v["status"] for k, v in resolutions.items()} == {
        "R-1": "paid",
        "R-2": "paid",
        "R-3": "paid",
        "R-4": "escalated",
    }
    assert resolutions["R-2"]["approved_by"] == "ann"
    payouts = module.payments.conn.execute("SELECT request FROM payouts ORDER BY request")
    assert [r[0] for r in payouts] == ["R-1", "R-2", "R-3"]
