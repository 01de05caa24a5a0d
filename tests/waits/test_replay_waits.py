"""Recorded replay returns the recorded signal or timeout of a wait; shadow replay answers a
candidate's wait from the recorded one; a redrive resumes after the recorded signal."""

from __future__ import annotations

from agentstream.journal.records import EventState
from agentstream.journal.sqlite import SqliteStore
from agentstream.replay import replay_recorded, replay_shadow
from agentstream.testing import AppHarness
from tests.ops.apps import wait_for
from tests.waits.apps import Refund, make_app, paid


async def record(tmp_path, url: str) -> None:
    app = make_app(url, tmp_path, timeout_s=1.0)
    async with AppHarness(app) as h:
        await h.produce(
            "refunds",
            [
                Refund(id="r1", customer="carol", cents=500_00),
                Refund(id="r2", customer="dave", cents=900_00),
                Refund(id="r3", customer="erin", cents=5_00, nap_s=0.2),
            ],
            key=lambda r: r.customer,
        )
        await app.signal("refunds", "r1", "approval", {"approved": True}, unknown_ok=True)
        await wait_for(lambda: len(paid(tmp_path / "paid.log")) == 3)
        await h.wait_drained()


async def test_replays_answer_waits_from_the_journal_without_waiting(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    await record(tmp_path, url)
    assert sorted(paid(tmp_path / "paid.log")) == [
        ("r1", "approved"),
        ("r2", "escalated"),
        ("r3", "auto"),
    ]
    store = SqliteStore(tmp_path / "as.db")
    await store.open()
    try:
        # recorded replay: the same outputs, byte for byte, no model call, no wait
        report = await replay_recorded(make_app(url, tmp_path), "refunds", store)
        assert report.ok and report.model_calls == 0
        assert report.count("identical") == 3
        # shadow replay: the candidate's waits are answered from the recorded signal / timeout
        candidate = make_app(url, tmp_path, timeout_s=1.0)
        shadow = await replay_shadow(
            make_app(url, tmp_path), "refunds", candidate, store, run_id="w1"
        )
        assert shadow.summary["events"] == 3 and shadow.summary["different"] == 0
        for event_id in ("r1", "r2", "r3"):
            record_ = await store.get_event("refunds", event_id)
            assert record_ is not None and record_.state == EventState.COMPLETED
    finally:
        await store.close()
    assert len(paid(tmp_path / "paid.log")) == 3  # replays performed no effect
