"""Agents that wait: a waiting event holds no lease or offset, resumes on its signal or timer."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from agentstream import SignalRejected, SignalStatus
from agentstream.cli import cli
from agentstream.journal.records import EventState, StepKind
from agentstream.journal.sqlite import SqliteStore
from agentstream.llm.simulator import CallLog
from agentstream.signal_sources import signal_source
from agentstream.testing import AppHarness
from tests.ops.apps import cli_run, wait_for
from tests.waits.apps import Refund, make_app, paid


def refunds(*specs: tuple[str, str, int]) -> list[Refund]:
    return [Refund(id=i, customer=c, cents=n) for i, c, n in specs]


async def state(url: str, event_id: str) -> EventState | None:
    store = SqliteStore(url.removeprefix("sqlite:///"))
    await store.open()
    try:
        record = await store.get_event("refunds", event_id)
        return None if record is None else record.state
    finally:
        await store.close()


async def test_a_waiting_event_releases_its_offset_and_resumes_on_its_signal(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    app = make_app(url, tmp_path)
    async with AppHarness(app) as h:
        # Given a big refund of carol that waits for approval, a small one of hers behind it,
        # and a small one of dave's
        await h.produce(
            "refunds",
            refunds(("r1", "carol", 500_00), ("r2", "carol", 10_00), ("r3", "dave", 5_00)),
            key=lambda r: r.customer,
        )
        # Then r1 waits, dave's refund is paid, carol's second one waits behind r1 (strict
        # ordering), and every offset is committed: the waiting event holds no partition
        await wait_for(lambda: paid(tmp_path / "paid.log") == [("r3", "auto")])
        await h.wait_drained()
        assert await state(url, "r1") == EventState.WAITING
        lags = [await w.transport.lag() for w in h.workers]
        assert lags and all(v == 0 for lag in lags for v in lag.values())
        assert all(w.executor.claims() == [] for w in h.workers)
        # When the approval arrives (twice)
        first = await app.signal("refunds", "r1", "approval", {"approved": True, "by": "ann"})
        second = await app.signal("refunds", "r1", "approval", {"approved": True, "by": "ann"})
        assert (first.status, second.status) == (SignalStatus.DELIVERED, SignalStatus.DUPLICATE)
        # Then r1 is paid as approved, once, and r2 runs after it
        await wait_for(lambda: len(paid(tmp_path / "paid.log")) == 3)
        await h.wait_drained()
        assert paid(tmp_path / "paid.log") == [("r3", "auto"), ("r1", "approved"), ("r2", "auto")]
        outcomes = {
            m.header("agentstream-event-id"): json.loads(m.value) for m in h.read("refund-outcomes")
        }
        assert outcomes[b"r1"] == {"id": "r1", "branch": "approved"}
        # And the model call made before the wait was not repeated on resume
        calls = [r for r in CallLog.read(tmp_path / "calls.db") if "/r1/" in str(r["step_key"])]
        assert len(calls) == 1
        # And a signal for the finished event is refused with a clear error, and recorded
        with pytest.raises(SignalRejected, match="completed"):
            await app.signal("refunds", "r1", "approval", {"approved": False})
        store = SqliteStore(url.removeprefix("sqlite:///"))
        await store.open()
        try:
            signals = await store.signals("refunds", "r1")
            steps = await store.steps("refunds", "r1")
        finally:
            await store.close()
        assert [s.status for s in signals] == ["consumed", "rejected"]
        [wait] = [s for s in steps if s.kind == StepKind.WAIT]
        assert wait.result["data"] == {"approved": True, "by": "ann"}


async def test_a_wait_times_out_into_its_escalation_branch(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    async with AppHarness(make_app(url, tmp_path, timeout_s=0.5)) as h:
        await h.produce("refunds", refunds(("r1", "carol", 500_00)), key=lambda r: r.customer)
        await wait_for(lambda: paid(tmp_path / "paid.log") == [("r1", "escalated")])


async def test_a_signal_sent_before_the_wait_is_kept_for_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    app = make_app(url, tmp_path)
    async with AppHarness(app) as h:
        early = await app.signal("refunds", "r1", "approval", {"approved": False}, unknown_ok=True)
        assert early.status == SignalStatus.UNKNOWN_EVENT
        await h.produce("refunds", refunds(("r1", "carol", 500_00)), key=lambda r: r.customer)
        await wait_for(lambda: paid(tmp_path / "paid.log") == [("r1", "denied")])


async def test_a_durable_sleep_resumes_after_its_time(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    async with AppHarness(make_app(url, tmp_path)) as h:
        await h.produce(
            "refunds",
            [Refund(id="r1", customer="carol", cents=5_00, nap_s=0.5)],
            key=lambda r: r.customer,
        )
        await wait_for(lambda: paid(tmp_path / "paid.log") == [("r1", "auto")])


async def test_the_command_line_lists_waiting_events_and_sends_signals(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    module = f"refund_app_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "from pathlib import Path\nfrom tests.waits.apps import make_app\n"
        f"app = make_app({url!r}, Path({str(tmp_path)!r}))\n"
    )
    monkeypatch.chdir(tmp_path)
    async with AppHarness(make_app(url, tmp_path)) as h:
        await h.produce("refunds", refunds(("r1", "carol", 500_00)), key=lambda r: r.customer)
        await wait_for(lambda: state(url, "r1"))
        await wait_for(lambda: _is_waiting(url, "r1"))
        # status lists the waiting event: what it waits for and since when
        shown = json.loads(await cli_run("status", "--store", url, "--json"))
        assert shown["agents"]["refunds"]["waiting"] == 1
        [row] = shown["waiting"]
        assert (row["event_id"], row["kind"], row["name"]) == ("r1", "signal", "approval")
        # a signal from the command line resumes it
        data = '{"approved": true, "by": "cli"}'
        sent = await cli_run("signal", f"{module}:app", "refunds", "r1", "approval", "--data", data)
        assert "delivered" in sent
        await wait_for(lambda: paid(tmp_path / "paid.log") == [("r1", "approved")])
    event = json.loads(await cli_run("journal", "show", "r1", "--store", url, "--json"))
    assert [(s["name"], s["status"]) for s in event["signals"]] == [("approval", "consumed")]
    # a signal for a finished event fails in one line, and is recorded
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["signal", f"{module}:app", "refunds", "r1", "approval", "--data", "{}"],
    )
    assert result.exit_code == 1 and "is completed" in result.output


async def _is_waiting(url: str, event_id: str) -> bool:
    return await state(url, event_id) == EventState.WAITING


async def test_a_signal_source_topic_answers_waits_once_per_record(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    app = make_app(url, tmp_path)
    signal_source(app, "approvals")
    async with AppHarness(app) as h:
        await h.produce("refunds", refunds(("r1", "carol", 500_00)), key=lambda r: r.customer)
        await wait_for(lambda: _is_waiting(url, "r1"))
        # a web app answers by producing a record, and its producer retries it
        approval = {"agent": "refunds", "event_id": "r1", "name": "approval", "id": "web-1"}
        approval["data"] = {"approved": False}
        await h.produce("approvals", [approval, approval])
        await wait_for(lambda: paid(tmp_path / "paid.log") == [("r1", "denied")])
        await h.wait_drained()
    store = SqliteStore(url.removeprefix("sqlite:///"))
    await store.open()
    try:
        signals = await store.signals("refunds", "r1")
    finally:
        await store.close()
    assert [(s.signal_id, s.status) for s in signals] == [("web-1", "consumed")]
