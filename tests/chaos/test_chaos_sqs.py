"""Chaos on SQS: two workers on a FIFO queue, SIGKILLed at chosen points and at random.

The queues live on a moto server started with :mod:`tests.sqs.moto_fifo`, whose FIFO receive
behaves like AWS's when a dead worker's messages become visible again (stock moto hands a group
back out of order then, and lets two concurrent receives share a group).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentstream.outputs import EVENT_ID_HEADER
from tests.chaos.harness import ChaosPlan, run_chaos, verify
from tests.sqs.conftest import drain, make_queue, redrive
from tests.sqs.moto_fifo import fifo_moto_server
from tests.sqs.raw import RawSQS

SOAK = os.environ.get("AGENTSTREAM_SOAK") == "1"
MAX_RECEIVES = 10


@pytest.fixture(scope="module")
def fifo_sqs() -> Iterator[str]:
    """A moto server with AWS-like FIFO redelivery, for this module."""
    with fifo_moto_server() as endpoint:
        yield endpoint


async def sqs_chaos_plan(sqs_endpoint: str, tmp_path: Path, **overrides: object) -> ChaosPlan:
    """Queues on the moto server and a plan whose workers hold messages for 3 s at a time.

    The source is a FIFO queue with a redrive policy (maxReceiveCount 10) to a queue of SQS's
    own; outputs and agentstream's dead letters go to FIFO queues.
    """
    base = f"sqs://test:test@{sqs_endpoint.split('://', 1)[1]}?region=us-east-1&wait_time=1"
    prefix = f"chaos{uuid.uuid4().hex[:8]}"
    source, output, dlq, sqs_dlq = (
        f"{prefix}-tickets.fifo",
        f"{prefix}-decisions.fifo",
        f"{prefix}-agent-dlq.fifo",
        f"{prefix}-sqs-dlq.fifo",
    )
    raw = RawSQS(sqs_endpoint)
    await raw.open()
    try:
        for name in (output, dlq, sqs_dlq):
            await make_queue(base, name)
        await make_queue(
            base,
            source,
            {"VisibilityTimeout": "3", **redrive(await raw.arn(sqs_dlq), MAX_RECEIVES)},
        )
    finally:
        await raw.close()
    plan = ChaosPlan(
        broker=f"{base}&visibility_timeout=3",
        store=f"sqlite:///{tmp_path / 'journal.db'}",
        workdir=tmp_path,
        source=source,
        output=output,
        dlq=dlq,
        events=1000,
        keys=100,
        duplicate_ratio=0.1,
        workers=2,
        random_kills=5,
        chosen_per_point=1,
        feed_s=6.0,
        latency_ms=25.0,
    )
    for name, value in overrides.items():
        setattr(plan, name, value)
    return plan


async def run_and_verify(sqs_endpoint: str, plan: ChaosPlan, sqs_dlq: str) -> None:
    raw = RawSQS(sqs_endpoint)
    await raw.open()
    try:

        async def source_drained() -> bool:
            return await raw.depth(plan.source) == 0

        stream, facts = await run_chaos(plan, settled=source_drained)
        got = await drain(plan.broker, plan.output, settle_s=2.0)
        outputs = [((m.header(EVENT_ID_HEADER) or b"").decode(), m.value) for m in got]
        report = await verify(plan, stream, facts, outputs)
        print(f"\nchaos (sqs, {plan.workers} workers):", report.line())
        # Every invariant held (verify raises otherwise); the kills and duplicates happened,
        assert report.random_kills == plan.random_kills
        assert report.chosen_kills >= 1
        assert report.duplicates >= plan.events // 10
        assert report.completed + report.dead == plan.events
        # every message was deleted, and SQS's own redrive never had to move one.
        assert await raw.depth(plan.source) == 0
        assert await raw.depth(sqs_dlq) == 0
    finally:
        await raw.close()


async def test_sigkilled_workers_on_a_fifo_queue_leave_one_decision_and_effect_per_event(
    fifo_sqs, tmp_path
):
    # Given 1,000 tickets in 100 message groups with 10% producer duplicates, two workers, and
    # SIGKILLs before the LLM call, after it, between an effect and its record, after completion
    # before the delete, and 5 at random
    plan = await sqs_chaos_plan(fifo_sqs, tmp_path)
    # When the workers are restarted after every kill until the stream is done
    # Then every event is completed or dead-lettered, each effect happened once, every delivery
    # saw the recorded decision, and each group was processed in order
    await run_and_verify(fifo_sqs, plan, plan.source.replace("-tickets", "-sqs-dlq"))


@pytest.mark.soak
@pytest.mark.skipif(not SOAK, reason="set AGENTSTREAM_SOAK=1 for the long chaos run")
async def test_a_long_sqs_chaos_run_keeps_every_invariant(fifo_sqs, tmp_path):
    plan = await sqs_chaos_plan(
        fifo_sqs,
        tmp_path,
        events=5000,
        random_kills=20,
        chosen_per_point=4,
        feed_s=40.0,
        latency_ms=30.0,
        deadline_s=900.0,
    )
    await run_and_verify(fifo_sqs, plan, plan.source.replace("-tickets", "-sqs-dlq"))
