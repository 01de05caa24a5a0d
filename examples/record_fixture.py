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
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentstream.backends import Backends
from agentstream.replay.history import export_history
from agentstream.testing import AppHarness

HERE = Path(__file__).resolve().parent


def _lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (HERE / name).read_text().splitlines()]


def _payments() -> list[dict[str, Any]]:
    rng = random.Random(11)
    return [
        {
            "payment_id": f"P-{i:04d}",
            "account_id": f"acct-{rng.randrange(8)}",
            "amount_cents": rng.randrange(100, 200_000),
            "merchant": rng.choice(["grocer", "airline", "casino", "electronics", "cafe"]),
            "country": rng.choice(["NL", "DE", "US", "BR", "NG"]),
        }
        for i in range(30)
    ]


EXAMPLES: dict[str, tuple[str, str, str, str, Callable[[], list[dict[str, Any]]]]] = {
    # module: (agent, source topic, key field, id field, input records)
    "refund_desk": (
        "triage",
        "tickets",
        "customer",
        "id",
        lambda: _lines("refund_desk_tickets.jsonl"),
    ),
    "support_triage": (
        "triage",
        "tickets",
        "customer_id",
        "ticket_id",
        lambda: _lines("tickets.jsonl"),
    ),
    "fraud_review": ("review", "payments", "account_id", "payment_id", _payments),
}


async def record(name: str, tmp: Path) -> int:
    agent, topic, key, ident, inputs = EXAMPLES[name]
    app = importlib.import_module(f"examples.{name}").app
    url = f"sqlite:///{tmp / name}.db"
    app.broker_url = app.store_url = url
    async with AppHarness(app) as h:
        await h.produce(topic, inputs(), key=lambda r: r[key], headers=lambda r: {"id": r[ident]})
        await h.wait_drained()
    store = Backends(url, url).store()
    await store.open()
    try:
        return await export_history(store, agent, HERE / "fixtures" / f"{name}.history.jsonl")
    finally:
        await store.close()


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the examples' stand-in services keep their files in the working folder
        for name in EXAMPLES:
            print(f"{name}: recorded {await record(name, Path(tmp))} events")


if __name__ == "__main__":
    asyncio.run(main())
