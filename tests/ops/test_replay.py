"""Recorded replay reproduces outputs exactly with zero model calls; shadow replay reports the
events whose decision a candidate changes, and performs no effect."""

from __future__ import annotations

from pathlib import Path

from agentstream.journal.sqlite import SqliteStore
from agentstream.replay import Selection, replay_recorded, replay_recorded_parallel, replay_shadow
from agentstream.testing import AppHarness
from tests.ops.apps import calls, effects, make_app, tickets

VIP_PROMPT = "You triage tickets of VIP customers: be generous with refunds."


async def record_traffic(tmp_path: Path, url: str) -> list[str]:
    batch = tickets(
        *[(f"t{i}", f"cust{i % 4}", False) for i in range(12)],
        *[(f"v{i}", f"vip{i % 2}", False) for i in range(4)],
        ("bad", "cust0", True),
    )
    async with AppHarness(make_app(url, tmp_path, fixed=False)) as h:
        await h.produce("tickets", batch, key=lambda t: t.customer)
        await h.wait_drained()
    return [t.id for t in batch]


async def snapshot(store: SqliteStore) -> tuple:
    events = await store.list_events(limit=None)
    return (
        await store.counts(),
        [(e.event_id, e.state, e.updated_at, e.epoch) for e in events],
        [[s.__repr__() for s in await store.steps(e.agent, e.event_id)] for e in events],
        [[r.__repr__() for r in await store.outbox(e.agent, e.event_id)] for e in events],
    )


async def test_recorded_replay_reproduces_outputs_exactly_with_zero_model_calls(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    await record_traffic(tmp_path, url)
    calls_before = len(calls(tmp_path / "calls.db"))
    effects_before = effects(tmp_path / "effects.log")
    store = SqliteStore(tmp_path / "as.db")
    await store.open()
    try:
        before = await snapshot(store)
        report = await replay_recorded(make_app(url, tmp_path, fixed=False), "triage", store)
        assert report.ok and report.model_calls == 0
        assert report.count("identical") == 16 and len(report.results) == 16  # "bad" is dead
        assert all(r.outputs == 1 for r in report.results)
        # zero model calls at the simulator, no effect executed, live state untouched
        assert len(calls(tmp_path / "calls.db")) == calls_before
        assert effects(tmp_path / "effects.log") == effects_before
        assert await snapshot(store) == before
        # a selection by offsets and by identity
        some = await replay_recorded(
            make_app(url, tmp_path, fixed=False), "triage", store, Selection(event_ids=["t3"])
        )
        assert [r.event_id for r in some.results] == ["t3"]
    finally:
        await store.close()


async def test_recorded_replay_of_changed_code_reports_the_divergent_events_and_calls_nothing(
    tmp_path,
):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    await record_traffic(tmp_path, url)
    calls_before = len(calls(tmp_path / "calls.db"))
    store = SqliteStore(tmp_path / "as.db")
    await store.open()
    try:
        changed = make_app(url, tmp_path, fixed=False, vip_prompt=VIP_PROMPT)
        report = await replay_recorded(changed, "triage", store)
    finally:
        await store.close()
    assert not report.ok and report.model_calls == 0
    failed = {r.event_id for r in report.results if r.status == "failed"}
    assert failed == {"v0", "v1", "v2", "v3"}
    assert all("nondeterminism" in r.detail for r in report.results if r.status == "failed")
    assert report.count("identical") == 12
    assert len(calls(tmp_path / "calls.db")) == calls_before


async def test_shadow_replay_reports_exactly_the_changed_decisions_and_performs_no_effect(
    tmp_path,
):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    await record_traffic(tmp_path, url)
    effects_before = effects(tmp_path / "effects.log")
    calls_before = len(calls(tmp_path / "calls.db"))
    store = SqliteStore(tmp_path / "as.db")
    await store.open()
    try:
        before = await snapshot(store)
        candidate = make_app(url, tmp_path, fixed=True, vip_prompt=VIP_PROMPT, seed=99)
        report = await replay_shadow(
            make_app(url, tmp_path, fixed=False), "triage", candidate, store, run_id="run-1"
        )
        after = await snapshot(store)
        stored = await store.shadow_results("run-1")
        [run] = await store.shadow_runs(run_id="run-1")
    finally:
        await store.close()
    different = {e["event_id"] for e in report.entries if e["decision"] == "different"}
    # only the VIP tickets got a new prompt, so exactly their decisions changed
    assert different == {"v0", "v1", "v2", "v3"}
    s = report.summary
    assert (s["events"], s["different"], s["divergence_rate"]) == (16, 4, 0.25)
    # the unchanged requests were answered from the journal; the VIP ones asked the model
    assert s["model_calls"] == 4 and len(calls(tmp_path / "calls.db")) == calls_before + 4
    by_id = {e["event_id"]: e for e in report.entries}
    assert by_id["t1"]["candidate"]["fresh_calls"] == 0 and by_id["t1"]["effects_same"]
    assert by_id["v1"]["candidate"]["fresh_calls"] == 1
    # effects: answered where the request matched, suppressed otherwise, never executed
    assert s["effects_answered"] == 12 and s["effects_suppressed"] == 4
    assert all(x["suppressed"] for e in different for x in by_id[e]["candidate"]["effects"])
    assert effects(tmp_path / "effects.log") == effects_before
    # tokens and cost are compared per event and in total
    assert by_id["t1"]["cost_delta_usd"] == 0 and by_id["t1"]["tokens_delta"] == 0
    assert s["candidate_tokens"] - s["live_tokens"] == sum(
        e["tokens_delta"] for e in report.entries
    )
    # stored under the run id; live state untouched
    assert after == before
    assert {r.event_id for r in stored} == set(by_id)
    assert run.summary == s and run.finished_at is not None


async def test_recorded_replay_on_two_processes_gives_the_in_process_results_in_order(
    tmp_path, monkeypatch
):
    # Given recorded traffic and the app importable as a module (for the worker processes)
    url = f"sqlite:///{tmp_path / 'as.db'}"
    await record_traffic(tmp_path, url)
    monkeypatch.setenv("OPS_TEST_DB", str(tmp_path / "as.db"))
    monkeypatch.setenv("OPS_TEST_WORK", str(tmp_path))
    calls_before = len(calls(tmp_path / "calls.db"))
    store = SqliteStore(tmp_path / "as.db")
    await store.open()
    try:
        before = await snapshot(store)
        alone = await replay_recorded(make_app(url, tmp_path, fixed=False), "triage", store)
        # When the same selection is replayed on two processes
        shared = await replay_recorded_parallel(
            "tests.ops.cli_app:app", "triage", url, Selection(page=3), processes=2
        )
        # Then every event reproduces, with the same result, in the journal's order
        assert shared.ok and shared.model_calls == 0
        assert shared.results == alone.results and len(shared.results) == 16
        # And no model was called and nothing was written
        assert len(calls(tmp_path / "calls.db")) == calls_before
        assert await snapshot(store) == before
    finally:
        await store.close()
