"""``agentstream status`` at a glance, and ``agentstream prune`` within the broker's horizon."""

from __future__ import annotations

from agentstream.observability import PrometheusMiddleware
from agentstream.testing import AppHarness
from tests.ops.apps import calls, cli_run, make_app, tickets


async def test_prune_never_deletes_rows_still_needed_for_dedup_within_the_broker_horizon(
    tmp_path,
):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    batch = tickets(("t1", "a", False), ("t2", "b", False), ("bad", "c", True))
    async with AppHarness(make_app(url, tmp_path, fixed=False)) as h:
        await h.produce("tickets", batch, key=lambda t: t.customer)
        await h.wait_drained()
        # a journal retention of 0s is raised to the broker's 1h horizon: nothing goes
        out = await cli_run(
            "prune", "--older-than", "0s", "--broker-retention", "1h", "--store", url
        )
        assert "0 events" in out
        # so a redelivery within the horizon is still a duplicate: no new model call
        await h.produce("tickets", batch[:1], key=lambda t: t.customer)
        await h.wait_drained()
        assert len(calls(tmp_path / "calls.db", "t1")) == 1
    # past both horizons, completed history goes; the dead event and its open letter stay
    out = await cli_run("prune", "--older-than", "0s", "--broker-retention", "0s", "--store", url)
    assert "2 events" in out and "4 steps" in out and "0 dead_letters" in out, out
    listing = await cli_run("journal", "list", "--store", url)
    assert "bad" in listing and "t1" not in listing and "t2" not in listing
    assert "bad" in await cli_run("dlq", "list", "--store", url)


async def test_status_shows_the_journal_dead_letters_parked_events_and_live_counters(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    metrics = PrometheusMiddleware(port=0)
    app = make_app(url, tmp_path, fixed=False, ordering="strict", middleware=[metrics])
    batch = tickets(("x1", "kim", True), ("x2", "kim", False), ("y1", "lee", False))
    async with AppHarness(app) as h:
        await h.produce("tickets", batch, key=lambda t: t.customer)
        await h.wait_drained()
        await h.produce("tickets", batch[2:], key=lambda t: t.customer)
        await h.wait_drained()
        out = await cli_run(
            "status",
            "--store",
            url,
            "--broker",
            url,
            "--metrics",
            f"http://127.0.0.1:{metrics.port}/metrics",
        )
    rows = [[c.strip() for c in ln.split("│")[1:-1]] for ln in out.splitlines() if "│" in ln]
    # journal: 1 completed, 0 in flight, 0 pending, 1 dead, 1 open dead letter, 1 parked
    assert ["triage", "1", "0", "0", "1", "1", "1"] in rows
    assert ["triage", "agent_error", "1"] in rows
    lines = {r[0]: r for r in rows}
    assert lines["duplicates detected"][1] == "1"
    assert lines["parked"][1] == "1"
    assert lines["dead letters"][1] == "1"
    assert lines["LLM calls made"][1] == "2"
