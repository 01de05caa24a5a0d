"""current_context(): the running event's Context, found without plumbing."""

from __future__ import annotations

import asyncio

import pytest

import agentstream
from agentstream import Context, NoCurrentContext
from agentstream.testing import run_agent
from tests.runtime.helpers import Ticket, make_app


def deep_inside_a_framework() -> str:
    return agentstream.current_context().identity


async def test_code_called_by_a_handler_finds_the_event_s_context(db_url):
    app = make_app(db_url)
    seen: list[tuple[bool, str, str]] = []

    @app.agent(source="tickets", identity=lambda t: t.ticket_id)
    async def triage(ctx: Context, t: Ticket) -> str:
        in_task = await asyncio.create_task(asyncio.sleep(0, deep_inside_a_framework()))
        in_thread = await asyncio.to_thread(deep_inside_a_framework)
        seen.append((agentstream.current_context() is ctx, in_task, in_thread))
        return t.ticket_id

    run = await run_agent(app, "triage", Ticket(ticket_id="T1", customer_id="c1"))
    assert run.outcome == "completed"
    assert seen == [(True, "T1", "T1")]


async def test_concurrent_events_each_see_their_own_context(db_url):
    app = make_app(db_url)

    @app.agent(source="tickets", identity=lambda t: t.ticket_id)
    async def triage(ctx: Context, t: Ticket) -> str:
        await asyncio.sleep(0.01)
        return deep_inside_a_framework()

    runs = await asyncio.gather(
        *(
            run_agent(app, "triage", Ticket(ticket_id=f"T{i}", customer_id=f"c{i}"))
            for i in range(4)
        )
    )
    assert [r.result for r in runs] == ["T0", "T1", "T2", "T3"]


def test_outside_a_handler_the_error_says_where_it_works():
    with pytest.raises(NoCurrentContext, match="outside an agent's handler"):
        agentstream.current_context()
