"""A worker frozen (SIGSTOP) past its lease cannot write when it wakes: no effect doubles.

The woken worker really writes to the journal (a step result, under its old epoch) while the
event is claimed by its successor, so only the epoch check can reject it: with that check
removed from the journal's writes this test fails.
"""

from __future__ import annotations

import uuid

from agentstream.journal import StepKind
from tests.chaos.zombie import ZombieSetup, run_zombie


def assert_fenced(result) -> None:
    # The woken worker's step write was rejected by epoch: its delivery ended fenced, and at
    # that moment the journal held no step of its (only the decision, made before the stop),
    assert result.zombie_outcomes and result.zombie_outcomes[0] == "fenced", result.zombie_outcomes
    assert "completed" not in result.zombie_outcomes
    assert [s.kind for s in result.steps_when_fenced] == [StepKind.LLM], result.steps_when_fenced
    # the successor claimed with a newer epoch and completed,
    assert result.record.state == "completed"
    assert result.record.epoch >= 2
    assert result.successor_outcomes[-1] == "completed", result.successor_outcomes
    # every step past the decision is the successor's,
    hold = [s for s in result.steps if s.name == "hold"]
    assert [s.result["pid"] for s in hold] == [result.successor_pid], hold
    assert all(s.epoch == result.record.epoch for s in result.steps if s.kind != StepKind.LLM)
    # and the refund happened exactly once, by the successor.
    assert len(result.refunds) == 1, result.refunds
    assert result.refunds[0]["pid"] == result.successor_pid


async def test_a_worker_woken_after_its_lease_moved_on_is_fenced_embedded(tmp_path):
    # Given a worker stopped mid-handler on the embedded log and SQLite journal,
    # when another worker takes the event over and the first is continued
    url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    result = await run_zombie(ZombieSetup(broker=url, store=url, workdir=tmp_path))
    # then its write is rejected by epoch and the effect is not doubled
    assert_fenced(result)


async def test_a_worker_woken_after_its_lease_moved_on_is_fenced_kafka_postgres(
    kafka_bootstrap, pg_url, tmp_path
):
    # Given a worker stopped mid-handler in a Kafka consumer group with a PostgreSQL journal:
    # its group session (6 s) and its claim lease (2 s) both run out while it is stopped
    from tests.conformance.conftest import KAFKA_TEST_SETTINGS

    setup = ZombieSetup(
        broker=f"kafka://{kafka_bootstrap}?{KAFKA_TEST_SETTINGS}&agentstream.partitions=2",
        store=pg_url,
        workdir=tmp_path,
        session_s=6.0,
        source=f"zombie-{uuid.uuid4().hex[:8]}",
    )
    # When the partition moves to a new worker, which claims the event, and the first worker
    # is continued
    result = await run_zombie(setup)
    # Then its late write is rejected by epoch and the refund is not doubled
    assert_fenced(result)
