"""Wait chaos on the embedded defaults, Kafka + PostgreSQL and SQS + PostgreSQL (real workers,
real SIGKILLs): every waiting refund ends in the branch its approval calls for, once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agentstream.outputs import EVENT_ID_HEADER
from agentstream.sqlite_db import sqlite_path
from agentstream.transports.embedded import read_topic
from tests.chaos.waits_harness import WaitPlan, run_wait_chaos, verify_waits
from tests.conformance.conftest import KAFKA_TEST_SETTINGS
from tests.kafka.conftest import read_topic as read_kafka
from tests.sqs.conftest import drain, make_queue
from tests.sqs.moto_fifo import fifo_moto_server
from tests.sqs.raw import RawSQS


@pytest.fixture(scope="module")
def fifo_sqs() -> Iterator[str]:
    """A moto server with AWS-like FIFO redelivery, for this module."""
    with fifo_moto_server() as endpoint:
        yield endpoint


async def test_waiting_refunds_survive_killed_workers_with_one_payout_each(tmp_path):
    # Given 500 refunds over 100 keys, 200 of which wait for approval: 40 approved before they
    # are produced, 40 never (they time out), the rest once seen waiting; every approval is
    # sent twice; two workers, SIGKILLed at chosen points and at random, also while events wait
    url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    plan = WaitPlan(broker=url, store=url, workdir=tmp_path)
    # When they are restarted after every kill until every refund is done
    refunds, facts = await run_wait_chaos(plan)
    outputs = [
        ((m.header(EVENT_ID_HEADER) or b"").decode(), m.value)
        for m in read_topic(sqlite_path(url), plan.output)
    ]
    report = await verify_waits(plan, refunds, facts, outputs)
    print("\nwait chaos (embedded):", report.line())
    # Then every invariant held (verify_waits raises otherwise), and the run was the one planned
    assert report.waited == 200 and report.branches["escalated"] == 40
    assert report.random_kills == plan.random_kills and report.chosen_kills >= 3
    assert report.kills_while_waiting >= 1
    assert report.duplicate_signals >= 160
    assert report.committed_past_waiting


SMALL: dict[str, Any] = {
    "events": 150,
    "waits": 60,
    "early": 12,
    "never": 12,
    "keys": 40,
    "random_kills": 1,
    "chosen": 0,
}
"""The smaller run on the brokers that need a server: one random kill, while events wait."""


async def test_waiting_refunds_on_kafka_and_postgres_survive_killed_workers(
    kafka_bootstrap, pg_url, tmp_path
):
    # Given a smaller run on Tansu (Kafka) with a PostgreSQL journal, two workers in one group
    prefix = f"waits{uuid.uuid4().hex[:8]}"
    plan = WaitPlan(
        broker=f"kafka://{kafka_bootstrap}?{KAFKA_TEST_SETTINGS}&agentstream.partitions=4",
        store=pg_url,
        workdir=tmp_path,
        **SMALL,
        source=f"{prefix}-refunds",
        output=f"{prefix}-outcomes",
        extra_env={"CHAOS_SESSION_S": "6"},
    )
    refunds, facts = await run_wait_chaos(plan)
    got = read_kafka(kafka_bootstrap, plan.output, want=plan.events, timeout_s=60)
    outputs = [((m.header(EVENT_ID_HEADER) or b"").decode(), m.value) for m in got]
    report = await verify_waits(plan, refunds, facts, outputs)
    print("\nwait chaos (kafka + postgres):", report.line())
    assert report.branches["escalated"] == 12 and report.random_kills == 1
    assert report.committed_past_waiting


async def test_waiting_refunds_on_sqs_and_postgres_survive_killed_workers(
    fifo_sqs, pg_url, tmp_path
):
    # Given a smaller run on a FIFO queue (message group per customer) with a PostgreSQL journal
    base = f"sqs://test:test@{fifo_sqs.split('://', 1)[1]}?region=us-east-1&wait_time=1"
    prefix = f"waits{uuid.uuid4().hex[:8]}"
    source, output = f"{prefix}-refunds.fifo", f"{prefix}-outcomes.fifo"
    await make_queue(base, output)
    await make_queue(base, source, {"VisibilityTimeout": "3"})
    plan = WaitPlan(
        broker=f"{base}&visibility_timeout=3",
        store=pg_url,
        workdir=tmp_path,
        **SMALL,
        source=source,
        output=output,
    )
    raw = RawSQS(fifo_sqs)
    await raw.open()
    try:

        async def source_drained() -> bool:
            return await raw.depth(source) == 0

        refunds, facts = await run_wait_chaos(plan, source_done=source_drained)
    finally:
        await raw.close()
    got = await drain(plan.broker, output, settle_s=2.0)
    outputs = [((m.header(EVENT_ID_HEADER) or b"").decode(), m.value) for m in got]
    report = await verify_waits(plan, refunds, facts, outputs)
    print("\nwait chaos (sqs + postgres):", report.line())
    assert report.branches["escalated"] == 12 and report.random_kills == 1
    assert report.committed_past_waiting  # messages deleted while their events waited
