"""The counts ``agentstream status`` shows come from indexes: in SQLite's plan of every query
they send, the events table is only searched (an index range, a probe per agent for the list of
agents) or read through the partial index of waiting events, and the steps table only through
the partial index of unpriced calls.

(PostgreSQL's plans are cost-based, so on a test-sized table a sequential scan is the right
plan; ``python -m bench.bench_status`` prints them on 200,000 events.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentstream.journal import StepKind
from agentstream.journal.sqlite import SqliteStore
from tests.conformance.test_store import META, step


class RecordingStore(SqliteStore):
    """A SQLite journal that remembers the queries it ran."""

    queries: list[tuple[str, tuple[Any, ...]]]

    async def select(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.queries.append((sql, tuple(args)))
        return await super().select(sql, args)


async def test_status_counts_agents_and_unpriced_calls_read_indexes_only(tmp_path):
    store = RecordingStore(tmp_path / "as.db")
    store.queries = []
    await store.open()
    try:
        for n in range(300):
            agent = ("triage", "fraud", "refunds")[n % 3]
            claim = await store.claim(agent, f"e{n}", owner="w", lease_s=5, meta=META)
            record = step(0)
            record.kind = StepKind.LLM
            record.meta = {"model": "m", "cost_source": "unpriced" if n % 50 == 0 else "table"}
            await store.write_step(agent, f"e{n}", claim.epoch, record)
        agents = await store.agents()
        counts = {a: await store.counts(a) for a in agents}
        unpriced = await store.unpriced_calls()
        await store.waiting(limit=20)
        assert agents == ["fraud", "refunds", "triage"]
        assert [c["claimed"] for c in counts.values()] == [100, 100, 100]
        assert unpriced == {("triage", "m"): 2, ("fraud", "m"): 2, ("refunds", "m"): 2}
        plans = {
            sql: [
                str(r[-1]) for r in await SqliteStore.select(store, "EXPLAIN QUERY PLAN " + sql, a)
            ]
            for sql, a in store.queries
        }
    finally:
        await store.close()
    # the events table only searched (a range of an index), the steps table only through the
    # partial index of unpriced calls (it holds those calls alone)
    for sql, lines in plans.items():
        for line in lines:
            if " as_events" in line or line.startswith(("SCAN e ", "SEARCH e ")):
                assert line.startswith("SEARCH") or "INDEX as_events_waiting" in line, (sql, line)
            if " as_steps" in line:
                assert line.startswith("SEARCH") or "INDEX as_steps_unpriced" in line, (sql, line)
