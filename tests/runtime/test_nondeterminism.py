"""A resumed step whose request changed is a non-determinism event, never silently reused."""

from __future__ import annotations

import pytest

from agentstream import Context, FailureClass, NonDeterminismPolicy, Retry
from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from tests.runtime.helpers import Outcomes, Ticket, make_app, simulated


def drifting_agent(app, policy):
    @app.agent(
        source="tickets",
        identity=lambda t: t.ticket_id,
        output="out",
        dead_letter="dlq",
        nondeterminism=policy,
        retry=Retry(attempts=3, backoff_initial=0.01),
    )
    async def drifting(ctx: Context, t: Ticket) -> str:
        # The prompt changes between attempts, as after a deploy that edited it mid-flight.
        answer = await ctx.llm(user=f"{t.text} (prompt v{ctx.attempt})")
        if ctx.attempt == 1:
            raise TimeoutError("interrupted after the model call")
        return answer.text or ""

    return drifting


async def journal(db_path):
    store = SqliteStore(db_path)
    await store.open()
    try:
        return (
            await store.get_event("drifting", "T1"),
            await store.failures("drifting", "T1"),
            await store.dead_letters(agent="drifting"),
        )
    finally:
        await store.close()


async def test_by_default_a_changed_request_dead_letters_with_both_fingerprints(db_url, db_path):
    provider = simulated()
    outcomes = Outcomes()
    app = make_app(db_url, provider, middleware=[outcomes])
    drifting_agent(app, NonDeterminismPolicy.DEAD_LETTER)
    async with AppHarness(app) as h:
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c")])
        await h.wait_drained()
    record, _failures, [letter] = await journal(db_path)
    assert record.state == "dead"
    assert letter.failure_class == FailureClass.NONDETERMINISM
    recorded = letter.envelope["llm_attempts"][0]["fingerprint"]
    mismatch = letter.envelope["detail"]["nondeterminism"]
    assert mismatch["seq"] == 0
    assert mismatch["recorded_fingerprint"] == recorded
    assert mismatch["new_fingerprint"] not in ("", recorded)
    assert provider.simulator.stats["requests"] == 1  # the changed request was not sent


@pytest.mark.parametrize(
    ("policy", "model_calls"),
    [(NonDeterminismPolicy.RERUN, 2), (NonDeterminismPolicy.USE_RECORDED, 1)],
)
async def test_other_policies_continue_but_report_the_mismatch(
    db_url, db_path, policy, model_calls
):
    provider = simulated()
    app = make_app(db_url, provider)
    drifting_agent(app, policy)
    async with AppHarness(app) as h:
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c")])
        await h.wait_drained()
    record, failures, letters = await journal(db_path)
    assert record.state == "completed" and letters == []
    assert provider.simulator.stats["requests"] == model_calls
    reports = [f for f in failures if f.failure_class == FailureClass.NONDETERMINISM]
    assert len(reports) == 1
    assert f"policy {policy}" in reports[0].message and "fingerprint" in reports[0].message
