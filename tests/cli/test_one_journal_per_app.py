"""Two apps run one after the other in one folder, on the defaults, each handle all their events.

The embedded log is shared (one ``agentstream.db``, each app its own consumer group); the
journal is not: its default file is named after the app, so the second app's ``triage`` agent
never finds the first one's events already completed.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path

from agentstream import App, Context
from agentstream.llm.simulator import SimulatedProvider
from agentstream.testing import AppHarness

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def helpdesk_app() -> App:
    """A second app with an agent of the same name on the same topic (the README's shape)."""
    app = App("helpdesk", llm=SimulatedProvider())

    @app.agent(source="tickets", identity=lambda t: t["ticket_id"], output="helpdesk.triage")
    async def triage(ctx: Context, ticket: dict[str, str]) -> dict[str, str]:
        answer = await ctx.llm.complete(user=ticket["text"])
        return {"ticket_id": ticket["ticket_id"], "answer": answer.text}

    return app


async def test_two_apps_in_one_folder_on_the_defaults_both_handle_every_event(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTSTREAM_BROKER", raising=False)
    monkeypatch.delenv("AGENTSTREAM_STORE", raising=False)
    sys.modules.pop("examples.support_triage", None)
    support = importlib.import_module("examples.support_triage").app
    tickets = [json.loads(line) for line in (EXAMPLES / "tickets.jsonl").read_text().splitlines()]
    async with AppHarness(support) as first:
        await first.produce("tickets", tickets, key=lambda t: t["customer_id"])
        await first.wait_drained()
        assert len(first.read("triage")) == len(tickets)
    async with AppHarness(helpdesk_app()) as second:
        await second.wait_drained()
        assert len(second.read("helpdesk.triage")) == len(tickets)


def test_the_default_journal_file_is_named_after_the_app_and_the_log_is_shared(monkeypatch):
    monkeypatch.delenv("AGENTSTREAM_BROKER", raising=False)
    monkeypatch.delenv("AGENTSTREAM_STORE", raising=False)
    app = App("support")
    assert app.broker_url == "sqlite:///agentstream.db"
    assert app.store_url == "sqlite:///support.journal.db"
    assert App("my team/bot").store_url == "sqlite:///my-team-bot.journal.db"
    explicit = App("support", broker="sqlite:///shared.db")
    assert explicit.store_url == "sqlite:///shared.db"


async def test_an_app_sharing_an_explicit_journal_with_another_app_is_warned_at_start_up(
    tmp_path, caplog
):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = helpdesk_app()
    first.broker_url = first.store_url = url
    async with AppHarness(first) as h:
        await h.produce("tickets", [{"ticket_id": "t1", "text": "hello"}])
        await h.wait_drained()
    second = helpdesk_app()
    second.name = "other"
    second.broker_url = second.store_url = url
    with caplog.at_level(logging.WARNING, logger="agentstream"):
        async with AppHarness(second):
            pass
    [line] = [r.getMessage() for r in caplog.records if "other.triage" in r.getMessage()]
    assert "helpdesk.triage" in line and "store=" in line
