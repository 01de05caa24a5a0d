"""Journal and embedded-log files hold payloads and transcripts: only their owner may read them."""

from __future__ import annotations

import stat

from agentstream import App, Context
from agentstream.testing import AppHarness


async def test_new_journal_and_log_files_are_created_0600(tmp_path):
    app = App("modes", broker=f"sqlite:///{tmp_path / 'log.db'}",
              store=f"sqlite:///{tmp_path / 'modes.journal.db'}")  # fmt: skip

    @app.agent(source="tickets", identity=lambda t: t["id"])
    async def triage(ctx: Context, ticket: dict) -> dict:
        return ticket

    async with AppHarness(app) as h:
        await h.produce("tickets", [{"id": "t1"}])
        await h.wait_drained()
        files = sorted(tmp_path.glob("*.db*"))
        assert {f.name for f in files} >= {"log.db", "modes.journal.db", "modes.journal.db-wal"}
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, (f.name, oct(f.stat().st_mode))
