"""Exactly-once under stalls: user code slower than the lease, and SIGSTOP bursts.

Two or three live workers on one journal (SQLite, then PostgreSQL), 1.5 s leases, sync steps
and effects that sleep or burn CPU for 2.2 s, random SIGSTOP/SIGCONT bursts of up to 3 s: no
effect row doubles, every event has exactly its decision's effects and one decision, and no
recorded model step was called by two live workers.
"""

from __future__ import annotations

from tests.chaos.stalls import StallPlan, run_stalls


async def test_stalled_and_blocking_workers_never_repeat_an_effect_or_a_model_call_sqlite(
    tmp_path,
):
    # Given three workers on the embedded log and one SQLite journal, their user code slower
    # than the lease, and random workers stopped and continued while they run
    url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    report = await run_stalls(StallPlan(broker=url, store=url, workdir=tmp_path))
    print(report.line())
    # Then every event completed with exactly its decision's effects, each once
    assert not report.broken(), report
    assert report.stops >= 10


async def test_stalled_and_blocking_workers_never_repeat_an_effect_or_a_model_call_postgres(
    pg_url, tmp_path
):
    # Given two workers on the embedded log and one PostgreSQL journal, under the same stalls
    url = f"sqlite:///{tmp_path / 'log.db'}"
    report = await run_stalls(StallPlan(broker=url, store=pg_url, workdir=tmp_path, workers=2))
    print(report.line())
    # Then every event completed with exactly its decision's effects, each once
    assert not report.broken(), report
    assert report.stops >= 10
