"""An app end to end on the PostgreSQL journal (embedded transport), and the CLI reading it."""

from __future__ import annotations

from agentstream import App, Context, Retry
from agentstream.journal.postgres import PostgresStore
from agentstream.outputs import EVENT_ID_HEADER
from agentstream.testing import AppHarness, run_agent
from tests.ops.apps import cli_run
from tests.runtime.helpers import FAST, Decision, Ticket, simulated, tickets


def make_app(db_url: str, pg_url: str, handled: list[str]) -> App:
    provider = simulated()
    app = App("pg", broker=db_url, store=pg_url, llm=provider, config=FAST)

    @app.agent(
        source="tickets",
        key=lambda t: t.customer_id,
        identity=lambda t: t.ticket_id,
        output="decisions",
        dead_letter="tickets.dlq",
        retry=Retry(attempts=2, backoff_initial=0.01),
    )
    async def triage(ctx: Context, t: Ticket) -> Decision:
        handled.append(t.ticket_id)
        decision = await ctx.llm.parse(Decision, user=t.text)
        if t.text == "crash":
            raise ValueError(f"cannot handle {t.ticket_id}")
        return decision

    return app


async def test_an_app_on_the_postgres_journal_decides_each_event_once(db_url, pg_url):
    # Given an app whose journal is PostgreSQL, and a stream delivered twice, plus a bad ticket
    handled: list[str] = []
    app = make_app(db_url, pg_url, handled)
    batch = tickets(40)
    bad = Ticket(ticket_id="BAD", customer_id="c9", text="crash")
    async with AppHarness(app) as h:
        await h.produce("tickets", [*batch, bad], key=lambda t: t.customer_id)
        await h.wait_drained()
        await h.produce("tickets", batch, key=lambda t: t.customer_id)
        await h.wait_drained()
        outputs = h.read("decisions")
        dead = h.read("tickets.dlq")
    # Then each good ticket ran once with one output, and the bad one was dead-lettered
    assert sorted(h for h in handled if h != "BAD") == sorted(t.ticket_id for t in batch)
    assert sorted(m.header(EVENT_ID_HEADER).decode() for m in outputs) == sorted(
        t.ticket_id for t in batch
    )
    assert len(dead) == 1
    store = PostgresStore(pg_url.split("?")[0], schema=pg_url.split("schema=")[1])
    await store.open()
    try:
        counts = await store.counts("triage")
        assert (counts["completed"], counts["dead"], counts["outbox_pending"]) == (40, 1, 0)
        record = await store.get_event("triage", "T0007")
        assert record is not None and record.deliveries == 2
    finally:
        await store.close()
    # And the operator commands read the PostgreSQL journal through its URL
    status = await cli_run("status", "--store", pg_url, "--broker", db_url)
    rows = [[c.strip() for c in ln.split("│")[1:-1]] for ln in status.splitlines() if "│" in ln]
    assert ["triage", "40", "0", "0", "1", "1", "0"] in rows
    assert "BAD" in await cli_run("dlq", "list", "--store", pg_url)
    assert "T0007" in await cli_run("journal", "list", "--store", pg_url, "--limit", "100")


async def test_run_agent_answers_a_duplicate_from_the_postgres_journal(db_url, pg_url):
    handled: list[str] = []
    app = make_app(db_url, pg_url, handled)
    ticket = Ticket(ticket_id="T1", customer_id="c1")
    first = await run_agent(app, "triage", ticket)
    again = await run_agent(app, "triage", ticket, offset=3)
    assert (first.outcome, first.state, [s.kind for s in first.steps]) == (
        "completed",
        "completed",
        ["llm"],
    )
    assert again.outcome == "duplicate" and again.result == first.result
    assert handled == ["T1"]
