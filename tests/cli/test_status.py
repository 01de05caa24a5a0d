"""``agentstream status``: every agent of the journal, as a table or as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import agentstream

FIXTURES = Path(__file__).resolve().parents[2] / "examples" / "fixtures"


def test_status_lists_every_agent_of_the_journal_and_prints_json(tmp_path):
    for agent, fixture in (("triage", "support_triage"), ("review", "fraud_review")):
        out = agentstream("journal", "import", "--agent", agent,
                          str(FIXTURES / f"{fixture}.history.jsonl"), "--store", "sqlite:///j.db",
                          cwd=tmp_path)  # fmt: skip
        assert out.code == 0, out.stderr
    out = agentstream("status", "--store", "sqlite:///j.db", "--json", cwd=tmp_path)
    assert out.code == 0, out.stderr
    report = json.loads(out.stdout)
    assert sorted(report["agents"]) == ["review", "triage"]
    assert all(c["completed"] > 0 for c in report["agents"].values())
    table = agentstream("status", "--store", "sqlite:///j.db", cwd=tmp_path)
    assert "review" in table.stdout and "triage" in table.stdout
