"""``agentstream tail TOPIC`` reads a topic on every transport: the embedded log, Kafka, SQS."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.cli.helpers import agentstream
from tests.conformance.conftest import KAFKA_TEST_SETTINGS
from tests.sqs.conftest import make_queue


async def broker_url(kind: str, request: pytest.FixtureRequest, topic: str) -> str:
    if kind == "embedded":
        return "sqlite:///log.db"
    if kind == "kafka":
        return f"kafka://{request.getfixturevalue('kafka_bootstrap')}?{KAFKA_TEST_SETTINGS}"
    endpoint = request.getfixturevalue("sqs_endpoint").split("://", 1)[1]
    url = f"sqs://test:test@{endpoint}?region=us-east-1&wait_time=1"
    await make_queue(url, topic)
    return url


@pytest.mark.parametrize("kind", ["embedded", "kafka", "sqs"])
async def test_tail_prints_every_record_of_a_topic_as_json_lines(kind, request, tmp_path):
    topic = f"tail{uuid.uuid4().hex[:8]}"
    url = await broker_url(kind, request, topic)
    records = [{"id": f"r{i}", "text": "[not markup] ünïcode"} for i in range(5)]
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    )
    out = agentstream("produce", topic, "in.jsonl", "--key", "id", "--id", "id", "--broker", url,
                      cwd=tmp_path)  # fmt: skip
    assert out.code == 0, out.stderr
    out = agentstream("tail", topic, "--broker", url, "--json", "--max", "5", "--idle", "20",
                      cwd=tmp_path)  # fmt: skip
    assert out.code == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(json.loads(g["value"])["id"] for g in got) == [f"r{i}" for i in range(5)]
    assert all(g["headers"]["ce_id"] == json.loads(g["value"])["id"] for g in got)
    text = agentstream("tail", topic, "--broker", url, "--max", "5", "--idle", "20", cwd=tmp_path)
    if kind != "sqs":  # SQS hides what the first tail received for its visibility timeout
        assert text.stdout.count("[not markup] ünïcode") == 5, text.stdout + text.stderr


async def test_tail_shows_a_tombstone_as_null_and_an_empty_value_as_empty_text(tmp_path):
    lines = [{"key": "k1", "value": None}, {"key": "k2", "value": ""}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    url = "sqlite:///log.db"
    out = agentstream("produce", "t", "in.jsonl", "--envelope", "--broker", url, cwd=tmp_path)
    assert out.code == 0, out.stderr
    out = agentstream("tail", "t", "--broker", url, "--json", "--max", "2", "--idle", "5",
                      cwd=tmp_path)  # fmt: skip
    assert out.code == 0, out.stderr
    got = {
        g["key"]: (g["value"], g["value_encoding"])
        for g in map(json.loads, out.stdout.splitlines())
    }
    assert got == {"k1": (None, "tombstone"), "k2": ("", "text")}
    text = agentstream("tail", "t", "--broker", url, "--max", "2", "--idle", "5", cwd=tmp_path)
    assert "(tombstone: null value)" in text.stdout, text.stdout + text.stderr
