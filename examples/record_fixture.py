"""Re-record the checked-in histories of the examples (run after changing an example).

    python -m examples.record_fixture

Runs each example on a temporary embedded log with its simulated model, then exports its
journal to ``examples/fixtures/<example>.history.jsonl``; CI replays those files against the
examples' current code (``tests/ops/test_fixtures.py``): a change that alters a recorded
decision fails the replay until the history is re-recorded on purpose.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import tempfile
from pathlib import Path

from agentstream.backends import Backends
from agentstream.replay.history import export_history
from agentstream.testing import AppHarness

HERE = Path(__file__).resolve().parent

EXAMPLES = {
    # module: (tickets file, key field, id field)
    "refund_desk": ("refund_desk_tickets.jsonl", "customer", "id"),
    "support_triage": ("tickets.jsonl", "customer_id", "ticket_id"),
}


async def record(name: str, tickets_file: str, key: str, ident: str, tmp: Path) -> int:
    app = importlib.import_module(f"examples.{name}").app
    url = f"sqlite:///{tmp / name}.db"
    app.broker_url = app.store_url = url
    tickets = [json.loads(line) for line in (HERE / tickets_file).read_text().splitlines()]
    async with AppHarness(app) as h:
        await h.produce(
            "tickets", tickets, key=lambda t: t[key], headers=lambda t: {"id": t[ident]}
        )
        await h.wait_drained()
    store = Backends(url, url).store()
    await store.open()
    try:
        return await export_history(store, "triage", HERE / "fixtures" / f"{name}.history.jsonl")
    finally:
        await store.close()


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the examples' stand-in services keep their files in the working folder
        for name, (tickets_file, key, ident) in EXAMPLES.items():
            n = await record(name, tickets_file, key, ident, Path(tmp))
            print(f"{name}: recorded {n} events")


if __name__ == "__main__":
    asyncio.run(main())
