"""Producing: to queues, to SNS topics, and from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agentstream.event import OutgoingRecord
from agentstream.transports.sqs import SQSTransport
from agentstream.transports.sqs_config import parse_sqs_url
from tests.sqs.conftest import drain, make_queue
from tests.sqs.raw import RawSQS


async def test_records_published_to_an_sns_topic_reach_its_queues_unchanged(
    sqs_url, raw: RawSQS, qname
):
    # Given an SNS topic with a queue subscribed for raw delivery
    await make_queue(sqs_url, qname)
    topic_arn = (await raw.sns.create_topic(Name=f"{qname}-topic"))["TopicArn"]
    await raw.sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=await raw.arn(qname),
        Attributes={"RawMessageDelivery": "true"},
    )
    sent = [
        OutgoingRecord(f"sns:{qname}-topic", b"c1", b'{"n": 1}', (("id", b"e1"),)),
        # (text headers only: moto fails to receive binary attributes delivered through SNS)
        OutgoingRecord(topic_arn, b"c2", b"\x00binary", (("id", b"e2"), ("x", b"y"))),
    ]
    # When records are produced to it by name and by ARN
    t = SQSTransport(parse_sqs_url(sqs_url))
    try:
        await t.produce(sent)
    finally:
        await t.close()
    # Then the subscribed queue receives them byte for byte
    got = await drain(sqs_url, qname)
    assert sorted((m.key, m.value, m.headers) for m in got) == sorted(
        (r.key, r.value, r.headers) for r in sent
    )


def test_agentstream_produce_writes_json_lines_to_a_fifo_queue_in_order(
    sqs_url, raw: RawSQS, qname, tmp_path: Path
):
    import asyncio

    queue = f"{qname}.fifo"
    asyncio.run(make_queue(sqs_url, queue))
    lines = [{"id": f"e{i}", "customer": "c1" if i % 2 else "c2", "n": i} for i in range(6)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentstream",
            "produce",
            queue,
            str(path),
            "--broker",
            sqs_url,
            "--id",
            "id",
            "--key",
            "customer",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "produced 6 record(s)" in result.stdout
    got = asyncio.run(drain(sqs_url, queue))
    assert len(got) == 6
    for customer in ("c1", "c2"):
        ns = [json.loads(m.value)["n"] for m in got if m.key == customer.encode()]
        assert ns == [line["n"] for line in lines if line["customer"] == customer]
    assert {m.header("ce_id") for m in got} == {f"e{i}".encode() for i in range(6)}


def test_the_sqs_example_runs_end_to_end():
    example = Path(__file__).resolve().parents[2] / "examples" / "sqs_triage.py"
    result = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "16 messages (4 producer duplicates)" in result.stdout
    assert "12 decisions on decisions.fifo" in result.stdout
    refunds = [line for line in result.stdout.splitlines() if "refunds for" in line]
    n, _, _, distinct, *_ = refunds[0].split()
    assert n == distinct  # no refund twice
