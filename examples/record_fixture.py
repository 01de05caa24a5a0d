"""Re-record the checked-in history of the support example (run after changing the example).

    python examples/record_fixture.py

Runs the example on a temporary embedded log with the seeded simulator, then exports its
journal to ``examples/fixtures/support_triage.history.jsonl``; CI replays that file against the
example's current code (``tests/ops/test_fixtures.py``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support_triage import app  # noqa: E402

from agentstream.backends import Backends  # noqa: E402
from agentstream.replay.history import export_history  # noqa: E402
from agentstream.testing import AppHarness  # noqa: E402


async def main() -> None:
    tickets = [json.loads(line) for line in (HERE / "tickets.jsonl").read_text().splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/support.db"
        app.broker_url = app.store_url = url
        async with AppHarness(app) as h:
            await h.produce(
                "tickets", tickets, key=lambda t: t["customer"], headers=lambda t: {"id": t["id"]}
            )
            await h.wait_drained()
        store = Backends(url, url).store()
        await store.open()
        try:
            out = HERE / "fixtures" / "support_triage.history.jsonl"
            n = await export_history(store, "triage", out)
        finally:
            await store.close()
    print(f"recorded {n} events")


if __name__ == "__main__":
    asyncio.run(main())
