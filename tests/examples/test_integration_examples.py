"""The SDK and framework refund examples run as documented, against the simulator over HTTP."""

from __future__ import annotations

import importlib
import sys

import pytest

from agentstream.testing import run_agent

EXAMPLES = [
    "refund_openai_sdk",
    "refund_anthropic_sdk",
    "refund_pydantic_ai",
    "refund_openai_agents",
]


# The examples' SDK clients live for the process; their pooled connections are not closed.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", EXAMPLES)
async def test_each_refund_example_answers_a_redelivered_ticket_from_the_journal(
    tmp_path, monkeypatch, name
):
    monkeypatch.chdir(tmp_path)
    for module_name in ("examples.refund_common", f"examples.{name}"):
        sys.modules.pop(module_name, None)
    module = importlib.import_module(f"examples.{name}")
    common = importlib.import_module("examples.refund_common")
    module.app.broker_url = module.app.store_url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    try:
        ticket = common.TICKETS[0]
        first = await run_agent(module.app, "refunds", ticket)
        sent, paid = common.requests_sent(), common.payments.count()
        again = await run_agent(module.app, "refunds", ticket, offset=1)
        assert first.outcome == "completed" and again.outcome == "duplicate"
        assert again.result == first.result
        assert sent >= 2 and common.requests_sent() == sent
        assert common.payments.count() == paid <= 1
        assert [s.kind for s in first.steps].count("llm") >= 2
    finally:
        for sim in common._simulators:
            sim.stop()
