"""Tombstones (null values) stay null through the dead-letter topic and a redrive.

Real processes on each log: ``agentstream produce`` writes a tombstone, an empty value and a
ticket; ``agentstream run`` dead-letters the first two (the agent's payload type cannot be
None, and empty bytes are not JSON); ``agentstream dlq redrive`` re-publishes them. The
records on the topics keep null as null and empty bytes as empty bytes.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import pytest

from agentstream.event import IDENTITY_OVERRIDE_HEADER, Message
from agentstream.transports.embedded import read_topic as read_embedded
from tests.cli.helpers import Running, agentstream
from tests.conformance.conftest import KAFKA_TEST_SETTINGS
from tests.kafka.conftest import read_topic as read_kafka

LINES = [
    {"key": "c1", "value": None, "headers": {"ce_id": "gone-1"}},
    {"key": "c2", "value": "", "headers": {"ce_id": "empty-1"}},
    {"key": "c3", "value": {"ticket_id": "T1", "customer_id": "c3"}, "headers": {"ce_id": "T1"}},
]


@pytest.mark.parametrize("log", ["embedded", "kafka"])
def test_a_tombstone_is_dead_lettered_and_redriven_as_null_not_empty_bytes(
    log: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    name = f"tomb{uuid.uuid4().hex[:8]}"
    if log == "kafka":
        bootstrap: str = request.getfixturevalue("kafka_bootstrap")
        broker = f"kafka://{bootstrap}?{KAFKA_TEST_SETTINGS}"

        def read(topic: str, want: int) -> list[Message]:
            return read_kafka(bootstrap, topic, want)
    else:
        broker = f"sqlite:///{tmp_path / 'log.db'}"

        def read(topic: str, want: int) -> list[Message]:
            return read_embedded(tmp_path / "log.db", topic)

    store = f"sqlite:///{tmp_path / 'journal.db'}"
    env = {"TOMBSTONE_TEST_NAME": name}
    source, dlq = f"{name}-tickets", f"{name}-tickets.dlq"
    lines = tmp_path / "lines.jsonl"
    lines.write_text("".join(json.dumps(line) + "\n" for line in LINES))

    # Given a tombstone, an empty value and a ticket produced with `agentstream produce`
    out = agentstream(
        "produce", source, str(lines), "--envelope", "--broker", broker, cwd=tmp_path, env=env
    )
    assert out.code == 0, out.stderr
    # When a worker whose payload type cannot be None runs
    worker = Running(
        "run", "tests.ops.tombstone_app:app", "--broker", broker, "--store", store,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            listed = agentstream("dlq", "list", "--store", store, "--json", cwd=tmp_path, env=env)
            letters = json.loads(listed.stdout) if listed.code == 0 else []
            if len(letters) == 2:
                break
            assert time.monotonic() < deadline, (listed.stderr, worker.lines[-30:])
            time.sleep(0.5)
        # Then both are dead-lettered at once, the tombstone with a reason that names it
        by_id = {d["event_id"]: d for d in letters}
        assert set(by_id) == {"gone-1", "empty-1"}
        assert {d["failure_class"] for d in letters} == {"poison"}
        shown = agentstream(
            "dlq", "show", str(by_id["gone-1"]["id"]), "--store", store, "--json",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        envelope = json.loads(shown.stdout)["envelope"]
        assert envelope["original"]["value_b64"] is None
        assert "tombstone" in envelope["exception"]["message"]
        # and the dead-letter topic got the tombstone as a tombstone
        dead = {m.header("agentstream-dlq-event-id"): m for m in read(dlq, 2)}
        assert (dead[b"gone-1"].key, dead[b"gone-1"].value) == (b"c1", None)
        assert (dead[b"empty-1"].key, dead[b"empty-1"].value) == (b"c2", b"")
    finally:
        code, _ = worker.stop(signal.SIGTERM)
        worker.kill()
    assert code == 0, worker.lines[-30:]

    # When both dead letters are redriven
    redriven = agentstream(
        "dlq", "redrive", "--all", "--store", store, "--broker", broker, cwd=tmp_path, env=env
    )
    assert redriven.code == 0, redriven.stderr
    assert "2 of 2 dead letter(s) redriven, 2 record(s) published" in redriven.stdout
    # Then the source topic has the tombstone again as null, and the empty value as b""
    again = {
        m.header(IDENTITY_OVERRIDE_HEADER): m
        for m in read(source, len(LINES) + 2)
        if m.header(IDENTITY_OVERRIDE_HEADER)
    }
    assert set(again) == {b"gone-1", b"empty-1"}
    assert (again[b"gone-1"].key, again[b"gone-1"].value) == (b"c1", None)
    assert (again[b"empty-1"].key, again[b"empty-1"].value) == (b"c2", b"")
